"""The app's one mask brush: a Gradio ImageEditor with a fixed red brush on a photograph.

The Label tab paints a shot's mask with it and the Review queue corrects the model's
proposed region with it, so both look and behave the same; what goes in and comes out
(the display copy, the mask as a layer, the paint scaled back to the image's pixels)
is :mod:`..display`'s ``editor_value`` and ``mask_from_editor``.

Why each caller makes a fresh editor inside ``gr.render`` (keyed by what it shows):
Gradio 6's ImageEditor hangs in "processing" when an event sends a new image to an
editor that an earlier event read as an input. Why that render passes
``show_progress=RENDER_PROGRESS``: replacing an editor that held an image leaves the
render's progress tracker "generating" for good (Gradio 6.31: a pulsing frame round the
column, and a page that never looks idle), though the new editor is there and works.
"""

from __future__ import annotations

import gradio as gr

#: ``gr.render(show_progress=...)`` for a block that makes a mask editor (module doc).
RENDER_PROGRESS = "hidden"
#: The paint colour: the same red as the masks drawn elsewhere on the page.
BRUSH_COLOUR = "#ff3030"


def create_mask_editor(
    value: dict | None, *, label: str, elem_id: str, key: str, interactive: bool = True
) -> gr.ImageEditor:
    """An editor showing ``value`` (``display.editor_value``), ready for the brush.

    No upload, crop or resize (the photograph is the part's own, its pixels map onto the
    stored mask) and a single paint layer (the mask is one region).
    """
    return gr.ImageEditor(
        value=value, type="numpy", image_mode="RGBA", format="png", sources=[],
        transforms=[], layers=False, height=420, interactive=interactive, label=label,
        brush=gr.Brush(colors=[BRUSH_COLOUR], default_color=BRUSH_COLOUR, color_mode="fixed"),
        elem_id=elem_id, key=key,
    )  # fmt: skip
