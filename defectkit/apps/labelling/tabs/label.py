"""The Label tab: bring images in, manage the defect classes, label, paint and note.

Why the label radio is always sent with its choices: Gradio checks a submitted value
against the choices this browser tab was last sent. A reload rebuilds the page with
only ``unlabelled`` and ``good``; an update that set only the value then left the
defect classes out, and saving a defect label failed. Every update of the radio here
carries both (:meth:`LabelTab.radio`).
"""

from __future__ import annotations

import gradio as gr

from defectkit.apps.labelling import importing, shot_mask, views
from defectkit.apps.labelling.mask_editor import RENDER_PROGRESS, create_mask_editor
from defectkit.apps.labelling.project import KEEP
from defectkit.apps.labelling.status import ask, ok, partly, problem, refuse
from defectkit.core.labels import GOOD

_HEADS = {"ok": ok, "partial": partly, "failed": problem}


class LabelTab:
    name, title = "label", "1 · Label"

    def __init__(self, shell) -> None:
        self.shell = shell

    # ------------------------------------------------------------------ layout
    def build(self) -> None:
        shell = self.shell
        self.gallery_ids = gr.State([])
        self.selected = gr.State(None)
        # Bumped by each Save: the brush is made afresh to show the mask as now stored.
        self.saves = gr.State(0)
        self.pending_delete = gr.State(None)  # the class whose deletion awaits a second click
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                self.upload = gr.File(
                    file_count="multiple", label="Upload images", elem_id="upload"
                )
                self.folder_box = gr.Textbox(
                    label="…or import a folder on this machine",
                    placeholder="/data/line3/images", elem_id="folder-path",
                )  # fmt: skip
                self.folder_btn = gr.Button("Add folder", elem_id="add-folder")
                self.shots_md = gr.Markdown(elem_id="shot-counts")
                with gr.Accordion("Defect classes", open=True):
                    self.class_name = gr.Textbox(
                        label="New class name / new name", placeholder="scratch",
                        elem_id="class-name",
                    )  # fmt: skip
                    self.add_class_btn = gr.Button("Add class", elem_id="add-class")
                    self.class_pick = gr.Dropdown(
                        choices=[], label="Existing class", elem_id="class-select"
                    )
                    with gr.Row():
                        self.rename_btn = gr.Button("Rename", size="sm", elem_id="rename-class")
                        self.delete_btn = gr.Button(
                            "Delete", size="sm", variant="stop", elem_id="delete-class"
                        )
            with gr.Column(scale=2):
                self.show_filter = gr.Radio(
                    list(views.FILTERS), value="all", label="Show", elem_id="gallery-filter"
                )
                self.gallery = gr.Gallery(
                    label="Images (click one to label it)", columns=4, height=520,
                    allow_preview=False, object_fit="contain", elem_id="gallery",
                )  # fmt: skip
            with gr.Column(scale=2):
                self.selected_md = gr.Markdown(
                    "Select an image in the gallery.", elem_id="selected-image"
                )

                # A fresh editor per selected image and Save (see mask_editor's module doc).
                @gr.render(
                    inputs=[shell.project_state, self.selected, self.saves],
                    show_progress=RENDER_PROGRESS,
                )  # fmt: skip
                def editor_area(path, image_id, saves):
                    self.render_editor(path, image_id, saves)

                # interactive=True: their only reader is the Save listener made inside
                # the render block, which Gradio does not see at build time.
                self.keep_mask = gr.Checkbox(
                    value=True, interactive=True, visible=False, elem_id="keep-mask",
                    label="Keep the saved mask (tinted yellow); your strokes are added to it. "
                    "Untick and save to remove it",
                )  # fmt: skip
                self.label_radio = gr.Radio(
                    [views.UNLABELLED, GOOD], value=None, label="Label", interactive=True,
                    elem_id="label-choice",
                )  # fmt: skip
                self.note_box = gr.Textbox(
                    label="Note (optional)", lines=2, interactive=True, elem_id="note",
                    placeholder="e.g. hairline scratch from the conveyor guide",
                )  # fmt: skip
                with gr.Row():
                    self.save_btn = gr.Button(
                        "Save label, mask and note", variant="primary", elem_id="save-label"
                    )
                    self.remove_btn = gr.Button(
                        "Remove image", variant="stop", elem_id="remove-image"
                    )

    # ------------------------------------------------------------------ what it shows
    def radio(self, project, value=KEEP):
        """The label radio's update: always the project's choices (see the module doc)."""
        choices = views.label_choices(project)
        if value is KEEP:
            return gr.update(choices=choices)
        return gr.update(choices=choices, value=value)

    def label_outputs(self) -> list:
        return [self.gallery, self.gallery_ids, self.shots_md, self.label_radio, self.class_pick]

    def labels(self, project, show_value) -> dict:
        """The gallery, shot counts and class lists (after anything that changes them)."""
        items, ids = views.gallery_items(project, show_value)
        return {
            self.gallery: items,
            self.gallery_ids: ids,
            self.shots_md: views.shots_markdown(project),
            self.label_radio: self.radio(project),
            self.class_pick: gr.update(choices=list(project.classes)),  # value: the engineer's pick
        }

    def selection_outputs(self) -> list:
        return [self.selected, self.selected_md, self.label_radio, self.note_box, self.keep_mask]

    def selection(self, project, image_id) -> dict:
        if image_id is None:
            return {
                self.selected: None,
                self.selected_md: "Select an image in the gallery.",
                self.label_radio: self.radio(project, None),
                self.note_box: "",
                self.keep_mask: gr.update(value=True, visible=False),
            }
        record = project.get(image_id)
        mask = " · mask painted" if record.mask else ""
        return {
            self.selected: image_id,
            self.selected_md: f"**{record.name}** · {record.width}x{record.height} · "
            f"{record.label or views.UNLABELLED}{mask}",
            self.label_radio: self.radio(project, record.label or views.UNLABELLED),
            self.note_box: record.note,
            # Ticked afresh for each image: dropping a mask is asked for, never inherited.
            self.keep_mask: gr.update(value=True, visible=record.mask is not None),
        }

    def outputs(self) -> list:
        return list(dict.fromkeys(
            [*self.label_outputs(), *self.selection_outputs(), self.pending_delete, self.show_filter]
        ))  # fmt: skip

    def show(self, project) -> dict:
        out = self.labels(project, "all")
        out.update(self.selection(project, None))  # the selection's radio update wins: it has both
        out.update({self.pending_delete: None, self.show_filter: "all"})
        return out

    def changed(self, project, show_value) -> dict:
        """After labels changed: this tab's lists, and the other tabs' summaries."""
        out = self.labels(project, show_value)
        out.update(self.shell.tabs["fit"].labels_changed(project))
        return out

    def changed_outputs(self) -> list:
        return list(
            dict.fromkeys([*self.label_outputs(), *self.shell.tabs["fit"].labels_changed_outputs()])
        )

    def classes_edited(self, project, message: str, show_value, *, pick) -> dict:
        """After a class was added, renamed or deleted: ``pick`` is the class picked now."""
        out = {self.shell.status: ok(message), self.class_name: ""}
        out.update(self.changed(project, show_value))
        out[self.class_pick] = gr.update(choices=list(project.classes), value=pick)
        return out

    # ------------------------------------------------------------------ the mask editor
    def render_editor(self, path, image_id, saves=0) -> None:
        shell = self.shell
        value, label = None, "Paint the defect region (optional)"
        if image_id is not None:
            try:
                project = shell.open(path)
                record = project.get(image_id)
                # The display copy: a 6000 x 4000 photograph would take the browser
                # seconds to load and paint on; the paint is scaled back on Save.
                value = shot_mask.paint_start(project, image_id)
                label = f"Paint the defect region of {record.name} (optional)"
                if record.mask:
                    label += ": its saved mask is tinted yellow, strokes add to it"
            except Exception:  # noqa: BLE001 - the status line already says what is wrong
                value = None
        editor = create_mask_editor(
            value, label=label, elem_id="mask-editor", key=f"mask-editor-{image_id}-{saves}"
        )
        self.save_btn.click(
            self.on_save,
            [shell.project_state, self.selected, self.label_radio, self.note_box, editor,
             self.keep_mask, self.show_filter, self.saves],
            list(dict.fromkeys(
                [shell.status, *self.changed_outputs(), *self.selection_outputs(), self.saves]
            )),
        )  # fmt: skip

    # ------------------------------------------------------------------ events
    def wire(self) -> None:
        shell = self.shell
        guard = shell.guard
        self.on_save = guard(self._save)
        state, show = shell.project_state, self.show_filter
        changed = [shell.status, *self.changed_outputs()]

        @guard
        def on_upload(path, files, show_value):
            project = shell.open(path)
            if not files:
                return {}
            outcome, message = views.import_status(importing.add_files(project, files))
            if outcome != "ok":
                gr.Warning(message)
            out = {shell.status: _HEADS[outcome](message), self.upload: None}
            out.update(self.changed(project, show_value))
            return out

        @guard
        def on_add_folder(path, folder, show_value):
            project = shell.open(path)
            outcome, message = views.import_status(importing.add_folder(project, folder))
            out = {shell.status: _HEADS[outcome](message)}
            out.update(self.changed(project, show_value))
            return out

        @guard
        def on_show(path, show_value):
            return self.labels(shell.open(path), show_value)

        @guard
        def on_select(path, ids, evt: gr.SelectData):
            project = shell.open(path)
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            if not ids or index >= len(ids):
                return {}
            return self.selection(project, ids[index])

        @guard
        def on_remove(path, image_id, show_value):
            project = shell.open(path)
            if image_id is None:
                refuse("select an image in the gallery first")
            name = project.get(image_id).name
            project.remove_image(image_id)
            shell.reviewer(project).forget(image_id)
            out = {shell.status: ok(f"Removed {name}")}
            out.update(self.changed(project, show_value))
            out.update(self.selection(project, None))
            return out

        @guard
        def on_add_class(path, name, show_value):
            project = shell.open(path)
            name = project.add_class(name)
            return self.classes_edited(project, f"Added class {name}", show_value, pick=name)

        def picked(old: str | None, action: str) -> str:
            if not old:
                refuse(f"pick the class to {action} in 'Existing class'")
            return old

        @guard
        def on_rename(path, old, new, show_value):
            project = shell.open(path)
            new = project.rename_class(picked(old, "rename"), new)
            return self.classes_edited(project, f"Renamed {old} to {new}", show_value, pick=new)

        @guard
        def on_delete(path, old, pending, show_value):
            project, old = shell.open(path), picked(old, "delete")
            shots = project.shot_counts().get(old, 0)
            if shots and pending != old:  # its shots would silently become unlabelled
                return {
                    shell.status: ask(
                        f"class {old} has {shots} labelled image(s); deleting it makes them "
                        "unlabelled (the images stay). Click Delete again to delete it."
                    ),
                    self.pending_delete: old,
                }
            count = project.delete_class(old)
            message = f"Deleted class {old}; {count} image(s) are unlabelled again"
            return {
                **self.classes_edited(project, message, show_value, pick=None),
                self.pending_delete: None,
            }

        self.upload.upload(on_upload, [state, self.upload, show], [*changed, self.upload])
        self.folder_btn.click(on_add_folder, [state, self.folder_box, show], changed)
        show.change(on_show, [state, show], self.label_outputs())
        self.gallery.select(
            on_select, [state, self.gallery_ids], [shell.status, *self.selection_outputs()]
        )
        self.remove_btn.click(
            on_remove, [state, self.selected, show],
            list(dict.fromkeys([*changed, *self.selection_outputs()])),
        )  # fmt: skip
        for event in (self.add_class_btn.click, self.class_name.submit):
            event(on_add_class, [state, self.class_name, show], [*changed, self.class_name])
        self.rename_btn.click(
            on_rename, [state, self.class_pick, self.class_name, show], [*changed, self.class_name]
        )
        self.delete_btn.click(
            on_delete,
            [state, self.class_pick, self.pending_delete, show],
            [*changed, self.class_name, self.pending_delete],
        )
        self.class_pick.change(lambda: None, None, self.pending_delete)  # another class: ask again

    def _save(self, path, image_id, label, note, edited, keep, show_value, saves):
        shell = self.shell
        project = shell.open(path)
        if image_id is None:
            refuse("select an image in the gallery first")
        label = None if label in (None, views.UNLABELLED) else label
        saved = shot_mask.save(
            project, image_id, label=label, note=note, edited=edited, keep=bool(keep)
        )
        record = saved.record
        shell.reviewer(project).forget(image_id)
        words = f"Saved {record.name}: {record.label or views.UNLABELLED}"
        words += " with a mask" if record.mask else ""
        out = {shell.status: ok(words + "".join(f"; {n}" for n in saved.notes))}
        out.update(self.changed(project, show_value))
        out.update(self.selection(project, image_id))
        out[self.saves] = (saves or 0) + 1
        return out
