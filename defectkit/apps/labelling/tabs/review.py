"""The Review queue tab: the lines' escalated parts, least certain first, the model's
proposal pre-filled; one click confirms, a changed class or a brush stroke corrects
(the part is shown in the app's mask brush, :mod:`..mask_editor`, the model's region
tinted in: strokes add to it, a tick box drops it); confirmed parts join the project
(refit in the Fit tab). Several review stores (one per line of the box) are
merged into one queue, each part naming its line and store. With a heavy model named
(remembered in the project), each part also gets its second opinion
(:mod:`..second_look`), shown beside the line's, disagreements first."""

from __future__ import annotations

import gradio as gr
import numpy as np

from defectkit.apps.labelling import escalated, second_look
from defectkit.apps.labelling.mask_editor import RENDER_PROGRESS, create_mask_editor
from defectkit.apps.labelling.status import ok, refuse
from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.sources import open_sources
from defectkit.core.labels import GOOD
from defectkit.errors import DefectkitError

#: Parts drawn in the gallery at once (each is fetched and decoded).
SHOWN = 48
#: The project setting that remembers the heavy model across restarts.
HEAVY_SETTING = "review_heavy_model"


class ReviewQueueTab:
    name, title = "queue", "4 · Review queue"

    def __init__(self, shell) -> None:
        self.shell = shell

    def build(self) -> None:
        self.items = gr.State([])  # the queue's items as JSON (no images), gallery order
        self.selected = gr.State(None)  # index into items
        with gr.Row(equal_height=True):
            self.source_box = gr.Textbox(
                label="Lines' review stores, one per line: a daemon URL (http://line3:8080, "
                "optionally followed by its token), a PostgreSQL URL (postgresql://host/db, "
                "every line writing there) or a review.db file",
                lines=2, scale=4, elem_id="queue-source",
            )  # fmt: skip
            self.token_box = gr.Textbox(
                label="Daemon token (for daemon URLs that name none)", type="password", scale=2,
                elem_id="queue-token",
            )  # fmt: skip
            self.load_btn = gr.Button("Load queue", scale=1, elem_id="queue-load")
        self.heavy_box = gr.Textbox(
            label="Second opinion (optional): a heavier model folder (`inspect fit -o`, more "
            "shots, a finer scale or a bigger backbone) or bundle; it re-inspects each part once "
            "(remembered in the project)",
            elem_id="queue-heavy",
        )  # fmt: skip
        self.summary_md = gr.Markdown(elem_id="queue-summary")
        with gr.Row():
            with gr.Column(scale=2):
                self.gallery = gr.Gallery(
                    label="Escalated parts, least certain first", columns=4, height=480,
                    allow_preview=False, object_fit="contain", elem_id="queue-gallery",
                )  # fmt: skip
            with gr.Column(scale=2):
                # The part in the app's mask brush, the model's region tinted in; a
                # fresh editor per selected part (see mask_editor's module doc).
                @gr.render(
                    inputs=[self.source_box, self.token_box, self.items, self.selected],
                    triggers=[self.selected.change], show_progress=RENDER_PROGRESS,
                )  # fmt: skip
                def editor_area(where, token, items, index):
                    self.render_editor(where, token, items, index)

                self.heavy_picture = gr.Image(
                    label="The heavy model's defect region (second opinion)", interactive=False,
                    height=320, visible=False, elem_id="queue-heavy-picture",
                )  # fmt: skip
                self.proposal_md = gr.Markdown("Select a part.", elem_id="queue-proposal")
                self.opinion_md = gr.Markdown("", elem_id="queue-opinion")
                self.label_radio = gr.Radio(
                    [GOOD], value=None, label="Class (the model's proposal)", interactive=True,
                    elem_id="queue-label",
                )  # fmt: skip
                # interactive=True: their only reader is the Confirm listener made inside
                # the render block, which Gradio does not see at build time.
                self.keep_region = gr.Checkbox(
                    value=True, interactive=True, elem_id="queue-keep-mask",
                    label="Keep the model's region (tinted yellow) in the mask; your strokes "
                    "are added to it",
                )  # fmt: skip
                self.note_box = gr.Textbox(
                    label="Note", lines=2, interactive=True, elem_id="queue-note"
                )
                self.confirm_btn = gr.Button(
                    "Confirm: add to the project", variant="primary", elem_id="queue-confirm"
                )

    def outputs(self) -> list:
        return [self.items, self.selected, self.gallery, self.summary_md, self.proposal_md, self.label_radio, self.note_box, self.heavy_picture,
                self.opinion_md, self.heavy_box]  # fmt: skip

    def show(self, project) -> dict:
        return {
            self.items: [], self.selected: None, self.gallery: [], self.summary_md: "",
            self.heavy_box: project.setting(HEAVY_SETTING, ""), **self.detail(project, None),
        }  # fmt: skip

    def detail(self, project, item, heavy=None) -> dict:
        """The selected part's picture and the model's proposal, pre-filled; the heavy
        model's opinion beside it when one is named."""
        choices = [GOOD, *project.classes]
        if item is None:
            return {
                self.proposal_md: "Select a part.",
                self.label_radio: gr.update(choices=choices, value=None), self.note_box: "",
                self.heavy_picture: gr.update(value=None, visible=False), self.opinion_md: "",
            }  # fmt: skip
        proposed = escalated.proposal(item, project)
        unnamed = "" if proposed.label else " (not a class of this project: pick one)"
        text = (
            f"**{item.name or item.sha256[:12]}** from {item.station}{_store(item)} · "
            f"bundle {item.bundle_id}"
            f"  \nWhy: {item.reason} · the line was told **{item.verdict}** ({item.policy})"
            f"  \nModel: **{item.model_verdict}**, class **{proposed.model_label}**{unnamed}, "
            f"score {item.score:.4g} (threshold {item.threshold:.4g})"
        )
        model = second_look.heavy_model(heavy)
        pair = second_look.opinions(project, model, [item])[item.sha256] if model else None
        return {
            self.proposal_md: text,
            self.label_radio: gr.update(choices=choices, value=proposed.label or None),
            self.note_box: proposed.caption,
            self.heavy_picture: gr.update(
                value=second_look.heavy_picture(pair) if pair else None, visible=pair is not None
            ),
            self.opinion_md: second_look.markdown(pair) if pair else "",
        }  # fmt: skip

    def load(self, project, where, token, heavy=None) -> dict:
        source = open_sources(where, token)
        model = second_look.heavy_model(heavy)  # a wrong path fails before the fetches
        project.remember(HEAVY_SETTING, (heavy or "").strip())
        items = escalated.queue(source, project)
        shown = [full for full in (source.fetch(i) for i in items[:SHOWN]) if full is not None]
        pairs = second_look.opinions(project, model, shown) if model else {}
        shown = second_look.disagreeing_first(shown, pairs)
        disputed = {sha for sha, pair in pairs.items() if pair.disagrees}
        lines = len({i.station for i in shown}) > 1
        gallery = [
            (_thumbnail(i), f"{'⚠ ' if i.sha256 in disputed else ''}"
             f"{i.station + ' · ' if lines else ''}{i.label} · {i.score:.3g}")
            for i in shown
        ]  # fmt: skip
        summary = (
            f"{len(items)} part(s) to review from {source.name}"
            + (f" (first {SHOWN} shown)" if len(items) > SHOWN else "")
            + (f"; the heavy model disagrees on {len(disputed)} (first, ⚠)" if model else "")
            if items else f"Nothing to review from {source.name}"
        )  # fmt: skip
        summary += "".join(f"  \n⚠ not read: {problem}" for problem in source.problems)
        return {
            self.items: [i.to_json() for i in shown], self.selected: None,
            self.gallery: gallery, self.summary_md: summary, **self.detail(project, None),
        }  # fmt: skip

    def render_editor(self, where, token, items, index) -> None:
        """The selected part in the mask brush, or why it cannot be painted; Confirm
        reads it (its listener lives here, beside the editor it reads)."""
        value, label, key = None, "Select a part to see and correct the model's region", "none"
        if index is not None:
            try:
                item = self._fetch(where, token, items, index)
                image = escalated.part_image(item)  # decoded once for the brush and the label
                value, key = escalated.paint_start(item, image), item.sha256[:16]
                label = (
                    "The model's region is tinted yellow: paint what it missed with the "
                    "brush (the eraser takes strokes back)"
                    if escalated.proposed_mask(item, image.shape[:2]) is not None
                    else "No region proposed: paint the defect with the brush (a good part "
                    "needs none)"
                )
            except DefectkitError as exc:  # the detail's status line says it too
                label = f"Cannot paint this part: {exc}"
        editor = create_mask_editor(
            value, label=label, elem_id="queue-editor", key=f"queue-editor-{index}-{key}"
        )
        shell = self.shell
        self.confirm_btn.click(
            self.on_confirm,
            [shell.project_state, self.source_box, self.token_box, self.heavy_box, self.items,
             self.selected, self.label_radio, self.keep_region, self.note_box, editor],
            list(dict.fromkeys(
                [shell.status, *self.outputs(), *shell.tabs["label"].changed_outputs()]
            )),
        )  # fmt: skip

    def wire(self) -> None:
        shell = self.shell
        outputs = [shell.status, *self.outputs()]

        @shell.guard
        def on_load(path, where, token, heavy):
            project = shell.open(path)
            out = self.load(project, where, token, heavy)
            return {shell.status: ok(out[self.summary_md]), **out}

        @shell.guard
        def on_select(path, where, token, heavy, items, evt: gr.SelectData):
            project = shell.open(path)
            item = self._fetch(where, token, items, evt.index)
            return {self.selected: evt.index, **self.detail(project, item, heavy)}

        @shell.guard
        def on_confirm(path, where, token, heavy, items, index, label, keep, note, edited):
            project = shell.open(path)
            if index is None:
                refuse("select a part in the queue first")
            item = self._fetch(where, token, items, index)
            mask = escalated.corrected_mask(item, edited, keep_proposal=keep)
            record = escalated.confirm(project, item, label=label, mask=mask, note=note)
            out = self.load(project, where, token, heavy)
            out[shell.status] = ok(
                f"Added {record.name} as {record.label}{_mask_words(record, mask)}; "
                "refit in the Fit tab to learn it"
            )
            out.update(shell.tabs["label"].changed(project, "all"))
            return out

        self.on_confirm = on_confirm

        inputs = [shell.project_state, self.source_box, self.token_box, self.heavy_box]
        self.load_btn.click(on_load, inputs, outputs)
        self.gallery.select(on_select, [*inputs, self.items], outputs)

    @staticmethod
    def _fetch(where, token, items, index):
        if not items or index is None or not 0 <= int(index) < len(items):
            refuse("the queue changed; load it again")
        item = open_sources(where, token).fetch(ReviewItem.from_json(items[int(index)]))
        if item is None:
            refuse("that part was evicted from the line's review store; load the queue again")
        return item


def _store(item: ReviewItem) -> str:
    """`` (via STORE)`` when the part's store is not named by its line already."""
    return f" (via {item.source})" if item.source and item.source != item.station else ""


def _mask_words(record, painted) -> str:
    """What became of the brush's region, for the status line."""
    if record.mask:
        return " with a mask"
    if painted is not None:
        return " (the painted region is dropped: good parts have no mask)"
    return " without a mask" if record.label != GOOD else ""


def _thumbnail(item: ReviewItem):
    """The gallery's picture of a part; a grey square when its image cannot be read (the
    part stays listed: selecting it says why)."""
    try:
        return escalated.picture(item)
    except DefectkitError:
        return np.full((64, 64, 3), 128, np.uint8)
