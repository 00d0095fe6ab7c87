"""The Fit & review tab: fit, move the threshold, review the unlabelled images.

The unlabelled images are inspected in the background (:class:`~..reviewer.Reviewer`):
opening a project or fitting returns at once, a progress line says how far the review
is, and a timer polls it while it runs, adding results as they come. A fit's status
reports the wall time the engineer waited.
"""

from __future__ import annotations

import time

import gradio as gr

from defectkit.apps.labelling import views
from defectkit.apps.labelling.display import mask_image, overlay_image
from defectkit.apps.labelling.histogram import score_range
from defectkit.apps.labelling.project import DEFAULT_BACKBONE
from defectkit.apps.labelling.review import SORTS, sort_reviewed
from defectkit.apps.labelling.roi import fit_roi_words
from defectkit.apps.labelling.status import ok, refuse
from defectkit.apps.labelling.tabs.roi_panel import RoiPanel
from defectkit.core.labels import GOOD

#: Progress trackers for handler defaults (Gradio makes a fresh tracker per call from
#: these; module-level so the defaults are not calls in the signature).
TRACK_TQDM = gr.Progress(track_tqdm=True)
#: Seconds between two looks at a running background review.
POLL_SECONDS = 1.0
THRESHOLD_LABEL = "Threshold (image score)"


def offline_backbones() -> list[str]:
    """Backbones whose weights are on this machine; the embedded default always first."""
    from defectkit.inspect.backbones import list_backbones

    names = [b.name for b in list_backbones() if b.available_offline]
    if DEFAULT_BACKBONE in names:
        names.remove(DEFAULT_BACKBONE)
        names.insert(0, DEFAULT_BACKBONE)
    return names


def range_only(update: dict) -> dict:
    """The slider update without its value: while results come in, the engineer may be
    holding the slider, so its value stays theirs, but its range follows the scores (it
    kept the range the first results after a refit set, and a threshold typed above a
    later, higher score was refused)."""
    return gr.update(maximum=update["maximum"]) if "maximum" in update else gr.update()


class FitTab:
    name, title = "fit", "2 · Fit & review"

    def __init__(self, shell) -> None:
        self.shell = shell
        self.backbones = offline_backbones()
        self.roi = RoiPanel(shell)

    # ------------------------------------------------------------------ layout
    def build(self) -> None:
        backbones = self.backbones
        self.review_ids = gr.State([])
        self.review_selected = gr.State(None)
        self.shown = gr.State(-1)  # how many reviewed images the page shows
        self.timer = gr.Timer(POLL_SECONDS, active=False)
        with gr.Row(equal_height=True):
            self.backbone = gr.Dropdown(
                backbones, value=backbones[0] if backbones else None,
                label="Backbone (weights on this machine)", elem_id="backbone",
            )  # fmt: skip
            self.use_unlabelled = gr.Checkbox(
                value=True, label="Learn from unlabelled images",
                info="the ones judged good widen 'good' and set the threshold; "
                "those judged defects are kept out",
                elem_id="use-unlabelled",
            )  # fmt: skip
            self.fit_btn = gr.Button("Fit", variant="primary", elem_id="fit")
        self.fit_md = gr.Markdown(elem_id="fit-summary")
        self.roi.build()
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Row(equal_height=True):
                    self.threshold = gr.Slider(
                        0.0, 2.0, value=0.0, step=0.001, label=f"{THRESHOLD_LABEL}: fit first",
                        interactive=False, scale=4, elem_id="threshold",
                    )  # fmt: skip
                    self.reset_btn = gr.Button(
                        "Use the calibrated threshold",
                        size="sm",
                        scale=1,
                        elem_id="threshold-reset",
                    )
                self.hist_img = gr.Image(
                    label="Scores of the labelled shots", interactive=False, show_label=False,
                    elem_id="histogram",
                )  # fmt: skip
                self.progress_md = gr.Markdown(elem_id="review-progress")
                self.review_gallery = gr.Gallery(
                    label="Heatmaps (click one for details)", columns=4, height=360,
                    allow_preview=False, object_fit="contain", elem_id="review-gallery",
                )  # fmt: skip
            with gr.Column(scale=1):
                self.review_md = gr.Markdown(elem_id="review-details")
                with gr.Row():
                    self.overlay_img = gr.Image(
                        label="Heatmap", interactive=False, elem_id="review-overlay"
                    )
                    self.mask_img = gr.Image(
                        label="Predicted mask", interactive=False, elem_id="review-mask"
                    )
                with gr.Row(equal_height=True):
                    self.accept_label = gr.Dropdown(
                        [GOOD], value=None, label="Label it as", elem_id="accept-label"
                    )
                    self.accept_btn = gr.Button(
                        "Add as a labelled shot and refit", elem_id="accept-shot"
                    )
        self.sort = gr.Dropdown(
            list(SORTS), value=next(iter(SORTS)), label="Sort", elem_id="review-sort"
        )
        # Full width, the caption column widest: captions are the longest cells.
        self.table = gr.Dataframe(
            headers=views.REVIEW_COLUMNS, interactive=False, wrap=True, label="Unlabelled images",
            column_widths=["14%", "8%", "9%", "7%", "40%", "22%"], elem_id="review-table",
        )  # fmt: skip

    # ------------------------------------------------------------------ what it shows
    def review_outputs(self) -> list:
        return [
            self.threshold, self.reset_btn, self.hist_img, self.table, self.review_gallery,
            self.review_ids, self.progress_md, self.shown, self.timer,
        ]  # fmt: skip

    def review(self, project, order, *, retry: bool = True) -> dict:
        """Threshold, histogram, table and heatmaps of what is reviewed so far; starts
        the background review of what is not (and the timer that follows it; ``retry``:
        see :meth:`~..reviewer.Reviewer.start`)."""
        record = project.fit_record
        if record is None:  # nothing of another project's fit may linger
            return {
                self.threshold: gr.update(value=0.0, interactive=False, label=f"{THRESHOLD_LABEL}: fit first"),
                self.reset_btn: gr.update(interactive=False),
                self.hist_img: None, self.table: [], self.review_gallery: [], self.review_ids: [],
                self.progress_md: "", self.shown: 0, self.timer: gr.Timer(active=False),
            }  # fmt: skip
        reviewer = self.shell.reviewer(project)
        progress = reviewer.start(retry=retry)
        learned = record.learned_as_good
        items = sort_reviewed(reviewer.items(), order, learned)
        return {
            **self.threshold_controls(record, items),
            self.hist_img: views.histogram(project, items),
            self.table: views.review_rows(items, learned),
            self.review_gallery: gr.update(
                value=[
                    (views.review_thumbnail(project, i), views.review_caption(i)) for i in items
                ],
                selected_index=None,
            ),
            self.review_ids: [i.id for i in items],
            self.progress_md: views.progress_markdown(progress),
            self.shown: len(items),
            self.timer: gr.Timer(active=progress.running),
        }

    def threshold_controls(self, record, items) -> dict:
        """The slider and reset button: live for a verdict model, disabled with the reason
        for a type-only one (it has no threshold to move)."""
        if not record.has_verdict:
            return {
                self.threshold: gr.update(
                    value=0.0, interactive=False,
                    label=f"{THRESHOLD_LABEL}: none ({views.NO_VERDICT})",
                ),
                self.reset_btn: gr.update(interactive=False),
            }  # fmt: skip
        scores = [*record.good_scores, *(s for v in record.defect_scores.values() for s in v)]
        top = score_range([*scores, *(i.result.score for i in items)], record.image_threshold)
        return {
            self.threshold: gr.update(
                minimum=0.0,
                maximum=round(top, 3),
                value=round(record.image_threshold, 4),
                interactive=True,
                label=THRESHOLD_LABEL,
            ),  # fmt: skip
            self.reset_btn: gr.update(interactive=record.threshold is not None),  # only when yours
        }

    def details_outputs(self) -> list:
        return [
            self.review_selected,
            self.review_md,
            self.overlay_img,
            self.mask_img,
            self.accept_label,
        ]

    def details(self, project, image_id) -> dict:
        """The selected image's verdict, class, caption, heatmap and mask, drawn on its
        display copy (the result itself is at the image's size)."""
        item = None
        if image_id is not None and project.fit_record is not None:
            item = self.shell.reviewer(project).item(image_id)
        if item is None:
            return {
                self.review_selected: None,
                self.review_md: "Click a heatmap for details." if project.fit_record else "",
                self.overlay_img: None,
                self.mask_img: None,
            }
        image = project.display_image(item.id)
        r = item.result
        classes = list(project.classes)
        return {
            self.review_selected: item.id,
            self.review_md: views.describe(item, project.fit_record.learned_as_good),
            self.overlay_img: overlay_image(image, item.maps, r.threshold, r.boxes),
            self.mask_img: mask_image(image, item.maps.mask),
            self.accept_label: gr.update(
                choices=[GOOD, *classes], value=r.label if r.label in classes else GOOD
            ),
        }

    def labels_changed_outputs(self) -> list:
        return [self.fit_md, self.accept_label, self.progress_md, self.timer,
                *self.roi.outputs()]  # fmt: skip

    def labels_changed(self, project) -> dict:
        """After labels changed on another tab: the stale-fit warning, the classes one
        can accept a result as, and a review of images that became unlabelled."""
        out = {
            self.fit_md: views.fit_markdown(project),
            self.accept_label: gr.update(choices=[GOOD, *project.classes]),
            **self.roi.refresh(project),  # new images to draw on, new shots to show it on
        }
        if project.fit_record is not None:
            progress = self.shell.reviewer(project).start()
            out[self.progress_md] = views.progress_markdown(progress)
            out[self.timer] = gr.Timer(active=progress.running)
        return out

    def outputs(self) -> list:
        return list(dict.fromkeys(
            [self.backbone, self.fit_md, *self.review_outputs(), *self.details_outputs(),
             *self.roi.outputs()]
        ))  # fmt: skip

    def show(self, project) -> dict:
        backbones = self.backbones
        chosen = (
            project.backbone
            if project.backbone in backbones
            else (backbones[0] if backbones else None)
        )
        out = {self.backbone: gr.update(value=chosen), self.fit_md: views.fit_markdown(project)}
        out.update(self.review(project, next(iter(SORTS))))
        out.update(self.details(project, None))
        out[self.accept_label] = gr.update(choices=[GOOD, *project.classes], value=None)
        out.update(self.roi.show(project))
        return out

    # ------------------------------------------------------------------ events
    def wire(self) -> None:
        shell = self.shell
        guard, state = shell.guard, shell.project_state
        review_outs = [shell.status, *self.review_outputs()]
        fitted_outs = list(dict.fromkeys([*review_outs, *self.details_outputs(), self.fit_md]))

        def refitted(project, order, previous, started, done: str) -> dict:
            out = self.review(project, order)
            out.update(self.details(project, None))
            out[self.fit_md] = views.fit_markdown(project)
            wall = time.perf_counter() - started  # last: all the engineer waits for
            words = views.refit_words(previous, project.fit_record)
            words += views.fit_status(project.fit_record) + fit_roi_words(project.fit_record)
            out[shell.status] = ok(f"{done} in {wall:.1f} s{words}")
            return out

        @guard
        def on_fit(path, backbone_name, order, use_unlabelled, progress=TRACK_TQDM):
            started = time.perf_counter()  # the wall time the engineer waits, not the model's share
            project = shell.open(path)
            previous = project.fit_record
            progress(0.0, desc="Fitting: loading the backbone and the shots")
            project.fit(backbone=backbone_name, progress=True, unlabelled=bool(use_unlabelled))
            return refitted(project, order, previous, started, "Fitted")

        @guard
        def on_threshold(path, value, order, image_id):
            project = shell.open(path)
            project.set_threshold(float(value))
            out = self.review(project, order)
            out.pop(self.threshold)  # the engineer is holding it
            out.update(self.details(project, image_id))
            out.pop(self.accept_label, None)  # keep the engineer's choice of label
            out[self.fit_md] = views.fit_markdown(project)  # "yours, ..."
            out[shell.status] = ok(f"Threshold {float(value):.3f}")
            return out

        @guard
        def on_reset(path, order, image_id):
            project = shell.open(path)
            project.set_threshold(None)
            out = self.review(project, order)
            out.update(self.details(project, image_id))
            out.pop(self.accept_label, None)
            out[self.fit_md] = views.fit_markdown(project)
            out[shell.status] = ok(
                f"Threshold {project.fit_record.image_threshold:.3f} (calibrated)"
            )
            return out

        @guard
        def on_sort(path, order):
            out = self.review(shell.open(path), order)
            out.pop(self.threshold)
            return out

        @guard
        def on_tick(path, shown, order):
            project = shell.open(path)
            progress = shell.reviewer(project).progress()
            out = {self.progress_md: views.progress_markdown(progress)}
            if progress.done != shown or not progress.running:
                # New results, or the job ended: show them; review() also starts what is
                # left (e.g. after a refit) and keeps the timer going only while a job runs.
                out.update(self.review(project, order, retry=False))
                out[self.threshold] = range_only(out[self.threshold])  # the engineer may be holding it
            return out

        @guard
        def on_review_select(path, ids, evt: gr.SelectData):
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            if not ids or index >= len(ids):
                return {}
            return self.details(shell.open(path), ids[index])

        @guard
        def on_accept(
            path, image_id, label, order, show_value, use_unlabelled, progress=TRACK_TQDM
        ):
            started = time.perf_counter()
            project = shell.open(path)
            if image_id is None:
                refuse("click a heatmap first, then choose its label")
            if not label:
                refuse("choose the label for this image")
            previous = project.fit_record
            record = project.set_label(image_id, label)
            progress(0.0, desc="Refitting with the new shot")
            project.fit(backbone=project.backbone, progress=True, unlabelled=bool(use_unlabelled))
            out = refitted(
                project, order, previous, started, f"{record.name} is now a {label} shot; refitted"
            )
            out.update(shell.tabs["label"].labels(project, show_value))
            return out

        self.fit_btn.click(
            on_fit, [state, self.backbone, self.sort, self.use_unlabelled], fitted_outs
        )
        self.threshold.release(
            on_threshold, [state, self.threshold, self.sort, self.review_selected],
            list(dict.fromkeys([*review_outs, *self.details_outputs(), self.fit_md])),
            show_progress="hidden",
        )  # fmt: skip
        self.reset_btn.click(
            on_reset, [state, self.sort, self.review_selected],
            list(dict.fromkeys([*review_outs, *self.details_outputs(), self.fit_md])),
        )  # fmt: skip
        self.sort.change(on_sort, [state, self.sort], review_outs)
        # Its own concurrency group: a look at the progress must not queue behind a fit.
        self.timer.tick(
            on_tick, [state, self.shown, self.sort], review_outs, show_progress="hidden",
            concurrency_limit=None, concurrency_id="review-progress",
        )  # fmt: skip
        self.review_gallery.select(
            on_review_select, [state, self.review_ids], [shell.status, *self.details_outputs()]
        )
        self.roi.wire()
        label_tab = shell.tabs["label"]
        self.accept_btn.click(
            on_accept,
            [state, self.review_selected, self.accept_label, self.sort, label_tab.show_filter,
             self.use_unlabelled],
            list(dict.fromkeys([*fitted_outs, *label_tab.label_outputs()])),
        )  # fmt: skip
