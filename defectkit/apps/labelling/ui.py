"""The labelling app's behaviour: handlers wired to the components of :mod:`.layout`.

Conventions that keep the page honest and testable:

- every handler returns a ``{component: value}`` dict, so a failing handler can update
  only the status line and leave everything else as it was;
- ``guard`` turns a :class:`~defectkit.errors.DefectkitError` into its message in the
  status line and a toast, and anything else into a one-line message (the traceback
  goes to the server log, never into the page);
- handlers call the project, the review cache and :mod:`.views`; they hold no state
  of their own (a browser tab keeps only its project path and selections).
"""

import functools
import logging

import gradio as gr

from defectkit.apps.labelling import exporting, importing, views
from defectkit.apps.labelling.histogram import score_range
from defectkit.apps.labelling.layout import CSS, TITLE, build_page, offline_backbones
from defectkit.apps.labelling.review import describe, mask_image, overlay_image, sort_reviewed
from defectkit.apps.labelling.views import editor_value, mask_from_editor
from defectkit.apps.labelling.workspace import Workspace
from defectkit.core.labels import GOOD
from defectkit.errors import DefectkitError

__all__ = ["CSS", "create_app"]

log = logging.getLogger(__name__)
#: Progress trackers for handler defaults (Gradio makes a fresh tracker per call from
#: these; module-level so the defaults are not calls in the signature).
TRACK_TQDM = gr.Progress(track_tqdm=True)
PROGRESS = gr.Progress()


def _ok(text: str) -> str:
    return f"✓ {text}"


def _problem(text: str) -> str:
    # Words, not only an icon: headless and factory browsers often lack emoji fonts.
    return f"**Error:** {text}"


def create_app(workspace: Workspace) -> gr.Blocks:
    """Build the page for ``workspace`` (not launched; see :func:`.server.launch`)."""
    backbones = offline_backbones()

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        p = build_page(workspace, backbones)

        # ------------------------------------------------------------------ helpers
        def guard(fn):
            """Errors become a status line and a toast; the page keeps its other values."""

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except DefectkitError as exc:
                    gr.Warning(str(exc))
                    return {p.status: _problem(str(exc))}
                except Exception as exc:  # never a traceback in the page
                    log.exception("labelling app: %s failed", fn.__name__)
                    message = (
                        f"unexpected error in {fn.__name__.removeprefix('on_')} "
                        f"({type(exc).__name__}: {exc}); details are in the server log"
                    )
                    gr.Warning(message)
                    return {p.status: _problem(message)}

            return wrapper

        def serve(project) -> None:
            # Gradio serves files only from allowed folders; the project's thumbnails
            # and export zips live in the project folder, which can be anywhere.
            allowed = getattr(demo, "allowed_paths", None)
            if isinstance(allowed, list) and str(project.root) not in allowed:
                allowed.append(str(project.root))

        def open_(path):
            project = workspace.open(path)
            serve(project)
            return project

        def label_view(project, show_value):
            items, ids = views.gallery_items(project, show_value)
            choices = views.label_choices(project)
            classes = list(project.classes)
            return {
                p.gallery: items,
                p.gallery_ids: ids,
                p.shots_md: views.shots_markdown(project),
                p.label_radio: gr.update(choices=choices),
                p.class_pick: gr.update(choices=classes),  # its value is the engineer's pick
                p.accept_label: gr.update(choices=[GOOD, *classes]),
                p.fit_md: views.fit_markdown(project),
            }

        def selection_view(project, image_id):
            if image_id is None:
                return {
                    p.selected: None,
                    p.selected_md: "Select an image in the gallery.",
                    p.label_radio: gr.update(value=None),
                    p.note_box: "",
                }
            record = project.get(image_id)
            return {
                p.selected: image_id,
                p.selected_md: f"**{record.name}** · {record.width}x{record.height} · "
                f"{record.label or views.UNLABELLED}{' · mask painted' if record.mask else ''}",
                p.label_radio: gr.update(value=record.label or views.UNLABELLED),
                p.note_box: record.note,
            }

        def reviewed(project, order):
            items = workspace.reviews(project).review(project) if project.fit_record else []
            return sort_reviewed(items, order)

        def review_view(project, order):
            record = project.fit_record
            if record is None:
                return {
                    p.threshold: gr.update(interactive=False),
                    p.hist_img: None,
                    p.table: [],
                    p.review_gallery: [],
                    p.review_ids: [],
                }
            items = reviewed(project, order)
            scores = [*record.good_scores, *(s for v in record.defect_scores.values() for s in v)]
            top = score_range([*scores, *(i.result.score for i in items)], record.image_threshold)
            return {
                p.threshold: gr.update(
                    minimum=0.0,
                    maximum=round(top, 3),
                    value=round(record.image_threshold, 4),
                    interactive=True,
                ),  # fmt: skip
                p.hist_img: views.histogram(project, items),
                p.table: views.review_rows(items),
                p.review_gallery: gr.update(
                    value=[
                        (views.review_thumbnail(project, i), views.review_caption(i)) for i in items
                    ],
                    selected_index=None,
                ),
                p.review_ids: [i.id for i in items],
            }

        def detail_view(project, image_id, order):
            empty = {
                p.review_selected: None,
                p.review_md: "Click a heatmap for details." if project.fit_record else "",
                p.overlay_img: None,
                p.mask_img: None,
            }
            if image_id is None or project.fit_record is None:
                return empty
            match = [i for i in reviewed(project, order) if i.id == image_id]
            if not match:
                return empty
            item = match[0]
            image = project.load_image(item.id)
            classes = list(project.classes)
            guess = item.result.label if item.result.label in classes else GOOD
            return {
                p.review_selected: item.id,
                p.review_md: describe(item),
                p.overlay_img: overlay_image(image, item.result),
                p.mask_img: mask_image(image, item.result.mask),
                p.accept_label: gr.update(choices=[GOOD, *classes], value=guess),
            }

        def export_view(project):
            zips = exporting.list_exports(project)
            return {p.export_file: str(zips[0]) if zips else None}

        # ------------------------------------------------------------------ handlers
        @guard
        def on_open(path, show_value, order):
            project = open_(path)
            out = {
                p.status: _ok(f"Project {project.root} · {len(project.images)} images"),
                p.project_state: str(project.root),
                p.project_box: gr.update(choices=workspace.recent(), value=str(project.root)),
                p.backbone: gr.update(value=project.backbone if project.backbone in backbones else (backbones[0] if backbones else None)),
            }  # fmt: skip
            out.update(label_view(project, show_value))
            out.update(selection_view(project, None))
            out.update(review_view(project, order))
            out.update(detail_view(project, None, order))
            out.update(export_view(project))
            return out

        @guard
        def on_upload(path, files, show_value):
            project = open_(path)
            if not files:
                return {}
            report = importing.add_files(project, files)
            message = report.message()
            if report.errors:
                gr.Warning(message)
            out = {
                p.status: (_problem if report.errors else _ok)(message),
                p.upload: None,
            }
            out.update(label_view(project, show_value))
            return out

        @guard
        def on_add_folder(path, folder, show_value):
            project = open_(path)
            report = importing.add_folder(project, folder)
            out = {p.status: (_problem if report.errors else _ok)(report.message())}
            out.update(label_view(project, show_value))
            return out

        @guard
        def on_show(path, show_value):
            return label_view(open_(path), show_value)

        @guard
        def on_select(path, ids, evt: gr.SelectData):
            project = open_(path)
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            if not ids or index >= len(ids):
                return {}
            return selection_view(project, ids[index])

        def render_editor(path, image_id):
            value, name = None, None
            if image_id is not None:
                try:
                    project = open_(path)
                    record = project.get(image_id)
                    value = editor_value(project.load_image(image_id), project.load_mask(image_id))
                    name = record.name
                except DefectkitError:
                    value = None  # the status line already says what is wrong
            editor = gr.ImageEditor(
                value=value, type="numpy", image_mode="RGBA", format="png", sources=[],
                transforms=[], layers=False, height=420, interactive=True,
                label=f"Paint the defect region of {name} (optional)" if name else "Paint the defect region (optional)",
                brush=gr.Brush(colors=["#ff3030"], default_color="#ff3030", color_mode="fixed"),
                elem_id="mask-editor", key=f"mask-editor-{image_id}",
            )  # fmt: skip
            p.save_btn.click(
                on_save, [p.project_state, p.selected, p.label_radio, p.note_box, editor, p.show],
                list(dict.fromkeys([*label_outs, *select_outs])),
            )  # fmt: skip

        @guard
        def on_save(path, image_id, label, note, edited, show_value):
            project = open_(path)
            if image_id is None:
                raise_problem("select an image in the gallery first")
            record = project.get(image_id)
            label = None if label in (None, views.UNLABELLED) else label
            mask = mask_from_editor(edited, (record.height, record.width))
            if mask is not None and label in (None, GOOD):
                gr.Info("the painted region is kept, but only defect shots use masks")
            record = project.annotate(image_id, label=label, note=note, mask=mask)
            workspace.reviews(project).forget(image_id)
            out = {p.status: _ok(f"Saved {record.name}: {record.label or views.UNLABELLED}"
                               f"{' with a mask' if record.mask else ''}")}  # fmt: skip
            out.update(label_view(project, show_value))
            out.update(selection_view(project, image_id))
            return out

        @guard
        def on_remove(path, image_id, show_value):
            project = open_(path)
            if image_id is None:
                raise_problem("select an image in the gallery first")
            name = project.get(image_id).name
            project.remove_image(image_id)
            workspace.reviews(project).forget(image_id)
            out = {p.status: _ok(f"Removed {name}")}
            out.update(label_view(project, show_value))
            out.update(selection_view(project, None))
            return out

        @guard
        def on_add_class(path, name, show_value):
            project = open_(path)
            name = project.add_class(name)
            out = {p.status: _ok(f"Added class {name}"), p.class_name: ""}
            out.update(label_view(project, show_value))
            out[p.class_pick] = gr.update(choices=list(project.classes), value=name)
            return out

        @guard
        def on_rename(path, old, new, show_value):
            project = open_(path)
            if not old:
                raise_problem("pick the class to rename in 'Existing class'")
            new = project.rename_class(old, new)
            out = {p.status: _ok(f"Renamed {old} to {new}"), p.class_name: ""}
            out.update(label_view(project, show_value))
            out[p.class_pick] = gr.update(choices=list(project.classes), value=new)
            return out

        @guard
        def on_delete(path, old, show_value):
            project = open_(path)
            if not old:
                raise_problem("pick the class to delete in 'Existing class'")
            count = project.delete_class(old)
            out = {p.status: _ok(f"Deleted class {old}; {count} image(s) are unlabelled again")}
            out.update(label_view(project, show_value))
            out[p.class_pick] = gr.update(choices=list(project.classes), value=None)
            return out

        @guard
        def on_fit(path, backbone_name, order, progress=TRACK_TQDM):
            project = open_(path)
            progress(0.0, desc="Fitting: loading the backbone and the shots")
            record = project.fit(backbone=backbone_name, progress=True)
            progress(0.9, desc="Inspecting the unlabelled images")
            out = {p.status: _ok(f"Fitted in {record.seconds:.1f} s")}
            out.update(review_view(project, order))
            out.update(detail_view(project, None, order))
            out[p.fit_md] = views.fit_markdown(project)
            return out

        @guard
        def on_threshold(path, value, order, image_id):
            project = open_(path)
            project.set_threshold(float(value))
            out = review_view(project, order)
            out.pop(p.threshold)  # the user is holding it
            out.update(detail_view(project, image_id, order))
            out.pop(p.accept_label, None)  # keep the engineer's choice of label
            out[p.status] = _ok(f"Threshold {float(value):.3f}")
            return out

        @guard
        def on_sort(path, order):
            project = open_(path)
            out = review_view(project, order)
            out.pop(p.threshold)
            return out

        @guard
        def on_review_select(path, ids, order, evt: gr.SelectData):
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            if not ids or index >= len(ids):
                return {}
            return detail_view(open_(path), ids[index], order)

        @guard
        def on_accept(path, image_id, label, order, show_value, progress=TRACK_TQDM):
            project = open_(path)
            if image_id is None:
                raise_problem("click a heatmap first, then choose its label")
            if not label:
                raise_problem("choose the label for this image")
            record = project.set_label(image_id, label)
            progress(0.0, desc="Refitting with the new shot")
            project.fit(backbone=project.backbone, progress=True)
            out = {p.status: _ok(f"{record.name} is now a {label} shot; refitted")}
            out.update(label_view(project, show_value))
            out.update(review_view(project, order))
            out.update(detail_view(project, None, order))
            return out

        @guard
        def on_export(path, target_value, precision_value, progress=PROGRESS):
            project = open_(path)
            progress(0.1, desc=f"Exporting to {target_value} {precision_value} and self-checking")
            archive = exporting.export_project(project, target_value, precision_value)
            summary = views.export_markdown(project, archive)
            return {
                p.status: _ok(f"Exported {archive.name}"),
                p.export_md: summary,
                p.export_file: str(archive),
            }

        # ------------------------------------------------------------------ wiring
        label_outs = [
            p.status,
            p.gallery,
            p.gallery_ids,
            p.shots_md,
            p.label_radio,
            p.class_pick,
            p.accept_label,
            p.fit_md,
        ]
        select_outs = [p.selected, p.selected_md, p.label_radio, p.note_box]
        review_outs = [p.status, p.threshold, p.hist_img, p.table, p.review_gallery, p.review_ids]
        detail_outs = [p.review_selected, p.review_md, p.overlay_img, p.mask_img, p.accept_label]
        all_outs = list(dict.fromkeys(
            [p.project_state, p.project_box, p.backbone, p.export_file, *label_outs, *select_outs,
             *review_outs, *detail_outs]
        ))  # fmt: skip

        open_inputs = [p.project_box, p.show, p.sort]
        demo.load(on_open, open_inputs, all_outs)
        p.open_btn.click(on_open, open_inputs, all_outs)
        p.project_box.select(on_open, open_inputs, all_outs)
        p.upload.upload(on_upload, [p.project_state, p.upload, p.show], [*label_outs, p.upload])
        p.folder_btn.click(on_add_folder, [p.project_state, p.folder_box, p.show], label_outs)
        p.show.change(on_show, [p.project_state, p.show], label_outs)
        p.gallery.select(on_select, [p.project_state, p.gallery_ids], [p.status, *select_outs])
        p.remove_btn.click(
            on_remove,
            [p.project_state, p.selected, p.show],
            list(dict.fromkeys([*label_outs, *select_outs])),
        )
        p.add_class_btn.click(
            on_add_class, [p.project_state, p.class_name, p.show], [*label_outs, p.class_name]
        )
        p.class_name.submit(
            on_add_class, [p.project_state, p.class_name, p.show], [*label_outs, p.class_name]
        )
        p.rename_btn.click(
            on_rename,
            [p.project_state, p.class_pick, p.class_name, p.show],
            [*label_outs, p.class_name],
        )
        p.delete_btn.click(on_delete, [p.project_state, p.class_pick, p.show], label_outs)
        p.fit_btn.click(
            on_fit,
            [p.project_state, p.backbone, p.sort],
            list(dict.fromkeys([*review_outs, *detail_outs, p.fit_md])),
        )
        p.threshold.release(
            on_threshold, [p.project_state, p.threshold, p.sort, p.review_selected],
            list(dict.fromkeys([*review_outs, *detail_outs])), show_progress="hidden",
        )  # fmt: skip
        p.sort.change(on_sort, [p.project_state, p.sort], review_outs)
        p.review_gallery.select(
            on_review_select, [p.project_state, p.review_ids, p.sort], [p.status, *detail_outs]
        )
        p.accept_btn.click(
            on_accept, [p.project_state, p.review_selected, p.accept_label, p.sort, p.show],
            list(dict.fromkeys([*label_outs, *review_outs, *detail_outs])),
        )  # fmt: skip
        p.export_btn.click(
            on_export,
            [p.project_state, p.target, p.precision],
            [p.status, p.export_md, p.export_file],
        )
        p.render_editor = render_editor
    return demo


def raise_problem(message: str) -> None:
    """Stop a handler with a message for the status line (a user mistake, not a bug)."""
    from defectkit.apps.labelling.records import ProjectError

    raise ProjectError(message)
