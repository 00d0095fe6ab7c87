"""The Export tab: a self-checked bundle of the fitted inspector, and its zip to download."""

from __future__ import annotations

import gradio as gr

from defectkit.apps.labelling import exporting, views
from defectkit.apps.labelling.status import ok
from defectkit.exporters.bundle import PRECISIONS

TARGET_CHOICES = [("OpenVINO", "openvino"), ("ONNX", "onnx")]
PROGRESS = gr.Progress()


class ExportTab:
    name, title = "export", "3 · Export"

    def __init__(self, shell) -> None:
        self.shell = shell

    def build(self) -> None:
        self.target = gr.Radio(
            TARGET_CHOICES, value="openvino", label="Target", elem_id="export-target"
        )
        self.precision = gr.Radio(
            list(PRECISIONS), value="fp32", label="Precision", elem_id="export-precision"
        )
        self.export_btn = gr.Button("Export bundle", variant="primary", elem_id="export")
        self.export_md = gr.Markdown(elem_id="export-summary")
        self.export_file = gr.File(
            label="Bundle (zip)", interactive=False, elem_id="export-download"
        )

    def outputs(self) -> list:
        return [self.export_md, self.export_file]

    def show(self, project) -> dict:
        zips = exporting.list_exports(project)
        return {
            self.export_md: views.export_markdown(project, zips[0]) if zips else "",
            self.export_file: str(zips[0]) if zips else None,
        }

    def wire(self) -> None:
        shell = self.shell

        @shell.guard
        def on_export(path, target_value, precision_value, progress=PROGRESS):
            project = shell.open(path)
            progress(0.1, desc=f"Exporting to {target_value} {precision_value} and self-checking")
            archive = exporting.export_project(project, target_value, precision_value)
            return {
                shell.status: ok(f"Exported {archive.name}"),
                self.export_md: views.export_markdown(project, archive),
                self.export_file: str(archive),
            }

        self.export_btn.click(
            on_export,
            [shell.project_state, self.target, self.precision],
            [shell.status, self.export_md, self.export_file],
        )
