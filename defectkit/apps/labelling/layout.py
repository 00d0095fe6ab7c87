"""The labelling page's layout: every component with its stable ``elem_id``, nothing else.

Layout: a project bar and a status line on top, then three tabs - Label (upload,
gallery, classes, label / mask / note editor), Fit & review (backbone, Fit, threshold
slider with the score histogram, results of the unlabelled images) and Export.
Behaviour lives in :mod:`.ui`; keeping the two apart keeps both readable.
"""

from types import SimpleNamespace

import gradio as gr

from defectkit.apps.labelling import views
from defectkit.apps.labelling.project import DEFAULT_BACKBONE
from defectkit.apps.labelling.review import SORTS
from defectkit.core.labels import GOOD
from defectkit.exporters.bundle import PRECISIONS

TITLE = "defectkit · labelling"
TARGET_CHOICES = [("OpenVINO", "openvino"), ("ONNX", "onnx")]
CSS = """
#status { min-height: 1.5em; }
"""


def offline_backbones() -> list[str]:
    """Backbones whose weights are on this machine; the embedded default always first."""
    from defectkit.inspect.backbones import list_backbones

    names = [b.name for b in list_backbones() if b.available_offline]
    if DEFAULT_BACKBONE in names:
        names.remove(DEFAULT_BACKBONE)
        names.insert(0, DEFAULT_BACKBONE)
    return names


class Page(SimpleNamespace):
    """The page's components by name (``page.status``, ``page.gallery``, ...).

    ``render_editor(path, image_id)`` is the callback the editor's render block calls
    to build the mask editor of the selected image; :mod:`.ui` sets it.
    """


def build_page(workspace, backbones: list[str]) -> Page:
    """Create the components inside the current ``gr.Blocks`` context."""
    default_path = str(workspace.default) if workspace.default else ""
    page = Page(render_editor=lambda path, image_id: None)
    project_state = gr.State(default_path)
    gallery_ids = gr.State([])
    selected = gr.State(None)
    review_ids = gr.State([])
    review_selected = gr.State(None)

    gr.Markdown(f"## {TITLE}")
    with gr.Row(equal_height=True):
        project_box = gr.Dropdown(
            choices=workspace.recent(), value=default_path or None, allow_custom_value=True,
            label="Project folder (a new folder creates a project)", scale=4,
            elem_id="project-path",
        )  # fmt: skip
        open_btn = gr.Button("Open", scale=1, elem_id="open-project")
    status = gr.Markdown("", elem_id="status")

    with gr.Tabs(elem_id="tabs"):
        with gr.Tab("1 · Label", id="label", elem_id="tab-label"):
            with gr.Row():
                with gr.Column(scale=1, min_width=260):
                    upload = gr.File(file_count="multiple", label="Upload images", elem_id="upload")
                    folder_box = gr.Textbox(
                        label="…or import a folder on this machine",
                        placeholder="/data/line3/images", elem_id="folder-path",
                    )  # fmt: skip
                    folder_btn = gr.Button("Add folder", elem_id="add-folder")
                    shots_md = gr.Markdown(elem_id="shot-counts")
                    with gr.Accordion("Defect classes", open=True):
                        class_name = gr.Textbox(
                            label="New class name / new name", placeholder="scratch",
                            elem_id="class-name",
                        )  # fmt: skip
                        add_class_btn = gr.Button("Add class", elem_id="add-class")
                        class_pick = gr.Dropdown(
                            choices=[], label="Existing class", elem_id="class-select"
                        )
                        with gr.Row():
                            rename_btn = gr.Button("Rename", size="sm", elem_id="rename-class")
                            delete_btn = gr.Button(
                                "Delete", size="sm", variant="stop", elem_id="delete-class"
                            )
                with gr.Column(scale=2):
                    show = gr.Radio(
                        list(views.FILTERS), value="all", label="Show", elem_id="gallery-filter"
                    )
                    gallery = gr.Gallery(
                        label="Images (click one to label it)", columns=4, height=520,
                        allow_preview=False, object_fit="contain", elem_id="gallery",
                    )  # fmt: skip
                with gr.Column(scale=2):
                    selected_md = gr.Markdown(
                        "Select an image in the gallery.", elem_id="selected-image"
                    )

                    # A fresh editor per selected image (see render_editor): Gradio 6's
                    # ImageEditor hangs in "processing" when an event sends a new image
                    # to an editor that an earlier event read as an input.
                    @gr.render(inputs=[project_state, selected])
                    def editor_area(path, image_id):
                        page.render_editor(path, image_id)

                    # interactive=True: their only reader is the Save listener made
                    # inside the render block, which Gradio does not see at build time.
                    label_radio = gr.Radio(
                        [views.UNLABELLED, GOOD], value=None, label="Label",
                        interactive=True, elem_id="label-choice",
                    )  # fmt: skip
                    note_box = gr.Textbox(
                        label="Note (optional)", lines=2, interactive=True, elem_id="note",
                        placeholder="e.g. hairline scratch from the conveyor guide",
                    )  # fmt: skip
                    with gr.Row():
                        save_btn = gr.Button(
                            "Save label, mask and note", variant="primary", elem_id="save-label"
                        )
                        remove_btn = gr.Button(
                            "Remove image", variant="stop", elem_id="remove-image"
                        )

        with gr.Tab("2 · Fit & review", id="fit", elem_id="tab-fit"):
            with gr.Row(equal_height=True):
                backbone = gr.Dropdown(
                    backbones, value=backbones[0] if backbones else None,
                    label="Backbone (weights on this machine)", elem_id="backbone",
                )  # fmt: skip
                fit_btn = gr.Button("Fit", variant="primary", elem_id="fit")
            fit_md = gr.Markdown(elem_id="fit-summary")
            with gr.Row():
                with gr.Column(scale=1):
                    threshold = gr.Slider(
                        0.0, 2.0, value=1.0, step=0.001, label="Threshold (image score)",
                        interactive=False, elem_id="threshold",
                    )  # fmt: skip
                    hist_img = gr.Image(
                        label="Scores of the labelled shots", interactive=False,
                        show_label=False, elem_id="histogram",
                    )  # fmt: skip
                    sort = gr.Dropdown(
                        list(SORTS),
                        value=next(iter(SORTS)),
                        label="Sort",
                        elem_id="review-sort",
                    )
                    table = gr.Dataframe(
                        headers=views.REVIEW_COLUMNS, interactive=False, wrap=True,
                        label="Unlabelled images", elem_id="review-table",
                    )  # fmt: skip
                with gr.Column(scale=1):
                    review_gallery = gr.Gallery(
                        label="Heatmaps (click one for details)", columns=4, height=360,
                        allow_preview=False, elem_id="review-gallery",
                    )  # fmt: skip
                    review_md = gr.Markdown(elem_id="review-details")
                    with gr.Row():
                        overlay_img = gr.Image(
                            label="Heatmap", interactive=False, elem_id="review-overlay"
                        )
                        mask_img = gr.Image(
                            label="Predicted mask", interactive=False, elem_id="review-mask"
                        )
                    with gr.Row(equal_height=True):
                        accept_label = gr.Dropdown(
                            [GOOD], value=None, label="Label it as", elem_id="accept-label"
                        )
                        accept_btn = gr.Button(
                            "Add as a labelled shot and refit", elem_id="accept-shot"
                        )

        with gr.Tab("3 · Export", id="export", elem_id="tab-export"):
            target = gr.Radio(
                TARGET_CHOICES, value="openvino", label="Target", elem_id="export-target"
            )
            precision = gr.Radio(
                list(PRECISIONS), value="fp32", label="Precision", elem_id="export-precision"
            )
            export_btn = gr.Button("Export bundle", variant="primary", elem_id="export")
            export_md = gr.Markdown(elem_id="export-summary")
            export_file = gr.File(
                label="Bundle (zip)", interactive=False, elem_id="export-download"
            )

    page.__dict__.update(
        project_state=project_state,
        gallery_ids=gallery_ids,
        selected=selected,
        review_ids=review_ids,
        review_selected=review_selected,
        project_box=project_box,
        open_btn=open_btn,
        status=status,
        upload=upload,
        folder_box=folder_box,
        folder_btn=folder_btn,
        shots_md=shots_md,
        class_name=class_name,
        add_class_btn=add_class_btn,
        class_pick=class_pick,
        rename_btn=rename_btn,
        delete_btn=delete_btn,
        show=show,
        gallery=gallery,
        selected_md=selected_md,
        label_radio=label_radio,
        note_box=note_box,
        save_btn=save_btn,
        remove_btn=remove_btn,
        backbone=backbone,
        fit_btn=fit_btn,
        fit_md=fit_md,
        threshold=threshold,
        hist_img=hist_img,
        sort=sort,
        table=table,
        review_gallery=review_gallery,
        review_md=review_md,
        overlay_img=overlay_img,
        mask_img=mask_img,
        accept_label=accept_label,
        accept_btn=accept_btn,
        target=target,
        precision=precision,
        export_btn=export_btn,
        export_md=export_md,
        export_file=export_file,
    )
    return page
