"""The Fit tab's region-of-interest panel: draw the box once, see it on the shots, clear it.

Drawing is two clicks on the image (opposite corners, in either order), read from the
picture's ``select`` event: it gives the clicked pixel of the picture the page shows,
which is scaled back to the image's own pixels (large images are shown as a display
copy). Gradio's ImageEditor has no rectangle tool, and a painted blob's bounding box
is a poor way to draw a straight edge. The four numbers below the picture show the
saved box and take a typed one for exact pixels.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from defectkit.apps.labelling import views
from defectkit.apps.labelling.roi import (
    Roi,
    check_roi,
    click_to_pixel,
    corners_roi,
    draw_corner,
    draw_roi,
    project_roi,
    save_roi,
)
from defectkit.apps.labelling.status import ok, refuse

#: Thumbnails the panel shows the region on (the labelled shots first).
MAX_SHOTS = 24
#: Small images are shown enlarged (whole pixels, nearest neighbour) to at least about
#: this longest side: a 256 x 128 part drawn at its own size is too small to click
#: corners on precisely. Large ones are shown as their display copy.
CANVAS_SIDE = 768
HELP = (
    "Optional. Click two opposite corners of the part on the image; outside the region "
    "nothing is learned or scored (fixtures, background, a frame). The region is in "
    "pixels of the image it was drawn on and applies in those same pixels to **every** "
    "image, as `inspect fit --roi X0 Y0 X1 Y1` does; an image smaller than it is clipped. "
    "It is used from the next **Fit** on."
)
AXES = ("x0", "y0", "x1", "y1")


class RoiPanel:
    """Built inside the Fit tab (:class:`~.fit.FitTab`), which shows and wires it."""

    def __init__(self, shell) -> None:
        self.shell = shell

    def build(self) -> None:
        self.corner = gr.State(None)  # the first clicked corner, in image pixels
        # Closed: most projects need none; its title says which region is saved.
        with gr.Accordion("Region of interest", open=False, elem_id="roi-panel") as self.panel:
            gr.Markdown(HELP)
            with gr.Row():
                with gr.Column(scale=2):
                    self.source = gr.Dropdown([], value=None, label="Draw on", elem_id="roi-source")
                    self.canvas = gr.Image(
                        label="Click two opposite corners", interactive=False, height=420,
                        elem_id="roi-canvas",
                    )  # fmt: skip
                with gr.Column(scale=1):
                    self.summary = gr.Markdown(elem_id="roi-summary")
                    with gr.Row():
                        self.numbers = [
                            gr.Number(label=axis.upper(), precision=0, minimum=0,
                                      elem_id=f"roi-{axis}", min_width=60)
                            for axis in AXES
                        ]  # fmt: skip
                    with gr.Row():
                        self.save_btn = gr.Button("Save region", elem_id="roi-save")
                        self.clear_btn = gr.Button("Clear region", elem_id="roi-clear")
                    self.shots = gr.Gallery(
                        label="The region on the images (labelled shots first)", columns=4, height=260,
                        allow_preview=False, object_fit="contain", elem_id="roi-shots",
                    )  # fmt: skip

    # ------------------------------------------------------------------ what it shows
    def outputs(self) -> list:
        return [
            self.panel, self.source, self.canvas, self.corner, self.summary, *self.numbers,
            self.shots,
        ]  # fmt: skip

    def show(self, project) -> dict:
        """Everything, drawn on the first labelled shot (else the first image)."""
        return self.refresh(project)

    def refresh(self, project, source=None) -> dict:
        """Everything again, after a project was opened, its images or labels changed (on
        the Label tab, so no drawing is under way) or its region changed: the images to
        draw on, the canvas (on ``source``, else the first labelled shot), the box, the shots."""
        roi = project_roi(project)
        if source is None:
            records = sorted(project.images, key=lambda r: r.label is None)
            source = records[0].id if records else None
        return {
            self.panel: gr.update(label=f"Region of interest: {roi.words() if roi else 'none'}"),
            self.source: gr.update(choices=self.choices(project), value=source),
            **self.drawn(project, source),
            self.summary: summary(roi),
            **dict(zip(self.numbers, list(roi) if roi else [None] * 4, strict=True)),
            self.shots: shot_pictures(project, roi),
        }

    @staticmethod
    def choices(project) -> list[tuple[str, str]]:
        return [(r.name, r.id) for r in project.images]

    def drawn(self, project, image_id, corner=None) -> dict:
        """The canvas: ``image_id``'s display copy with the saved region (and a pending corner)."""
        if image_id is None:
            return {self.canvas: None, self.corner: None}
        record = project.get(image_id)
        image = canvas_image(project, image_id)
        scale = image.shape[1] / record.width
        picture = draw_roi(image, project_roi(project), scale=scale)
        if corner is not None:
            picture = draw_corner(picture, corner, scale=scale)
        return {
            self.canvas: gr.update(
                value=picture, label=f"Click two opposite corners on {record.name} "
                f"({record.width} x {record.height} px)",
            ),
            self.corner: corner,
        }  # fmt: skip

    def saved(self, project, image_id, message: str) -> dict:
        out = self.refresh(project, image_id)
        out[self.shell.tabs["fit"].fit_md] = views.fit_markdown(project)  # "click Fit to use it"
        out[self.shell.status] = ok(message)
        return out

    # ------------------------------------------------------------------ events
    def wire(self) -> None:
        shell = self.shell
        state = shell.project_state
        fit_md = shell.tabs["fit"].fit_md
        outs = list(dict.fromkeys([shell.status, fit_md, *self.outputs()]))

        @shell.guard
        def on_source(path, image_id):
            return self.drawn(shell.open(path), image_id)

        @shell.guard
        def on_click(path, image_id, corner, evt: gr.SelectData):
            project = shell.open(path)
            if image_id is None:
                refuse("choose the image to draw the region on first")
            record = project.get(image_id)
            shown = canvas_image(project, image_id).shape[:2]
            pixel = click_to_pixel(evt.index, shown, (record.height, record.width))
            if corner is None:
                out = self.drawn(project, image_id, pixel)
                out[shell.status] = ok(
                    f"First corner at x {pixel[0]}, y {pixel[1]}: click the opposite corner"
                )
                return out
            roi = corners_roi(tuple(corner), pixel, record.width, record.height)
            save_roi(project, roi)
            return self.saved(project, image_id, saved_words(roi, record))

        @shell.guard
        def on_save(path, image_id, *values):
            project = shell.open(path)
            if image_id is None:
                refuse("choose the image the region is for first (it is checked against it)")
            record = project.get(image_id)
            if any(v is None for v in values):
                refuse("type all four numbers X0 Y0 X1 Y1, or click two corners on the image")
            roi = check_roi(values, record.width, record.height)
            save_roi(project, roi)
            return self.saved(project, image_id, saved_words(roi, record))

        @shell.guard
        def on_clear(path, image_id):
            project = shell.open(path)
            save_roi(project, None)
            return self.saved(
                project, image_id, "Region of interest cleared: the next fit uses the whole image"
            )

        self.source.input(on_source, [state, self.source], [shell.status, *self.outputs()])
        self.canvas.select(on_click, [state, self.source, self.corner], outs)
        self.save_btn.click(on_save, [state, self.source, *self.numbers], outs)
        self.clear_btn.click(on_clear, [state, self.source], outs)


def summary(roi: Roi | None) -> str:
    if roi is None:
        return "No region: the whole image is inspected."
    return f"Region of interest: **{roi.words()}**, in every image's pixels."


def saved_words(roi: Roi, record) -> str:
    return (
        f"Region of interest saved: {roi.words()}, drawn on {record.name} "
        f"({record.width} x {record.height}); click Fit to use it"
    )


def canvas_image(project, image_id: str) -> np.ndarray:
    """The picture the engineer clicks on: the display copy, enlarged by a whole factor
    when small (see :data:`CANVAS_SIDE`)."""
    image = project.display_image(image_id)
    factor = CANVAS_SIDE // max(image.shape[:2])
    if factor < 2:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def shot_pictures(project, roi: Roi | None) -> list[tuple]:
    """The labelled shots' thumbnails (then the others', up to :data:`MAX_SHOTS`), each
    with the region clipped to that image's own size."""
    records = sorted(project.images, key=lambda r: r.label is None)[:MAX_SHOTS]
    pictures = []
    for record in records:
        thumb = np.asarray(Image.open(project.thumbnail(record.id)).convert("RGB"))
        scale = thumb.shape[1] / record.width
        pictures.append((draw_roi(thumb, roi, scale=scale), record.name))
    return pictures
