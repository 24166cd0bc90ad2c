"""Saving a run's artifacts into a local folder (the TUI's artifacts dialog). No Textual here:
the dialog runs :func:`save_artifacts` in a thread and shows its sentence."""

from __future__ import annotations

from pathlib import Path

from control.client import ControlClient, DevyardError
from control.wire.runs import ArtifactOut


class SaveRefused(Exception):
    """The artifacts cannot be saved there; the message is one sentence."""


def save_artifacts(client: ControlClient, run_id: int, artifacts: list[ArtifactOut], folder: Path) -> list[Path]:
    """Download every artifact to ``folder``/<its path> (folders made as needed); the files written.

    An artifact whose path would leave ``folder`` is refused before anything is written.
    """
    base = folder.expanduser()
    if base.exists() and not base.is_dir():
        raise SaveRefused(f"{folder} is a file, not a folder; give a folder to save the artifacts in.")
    resolved = base.resolve()
    targets = []
    for artifact in artifacts:
        target = (resolved / artifact.path).resolve()
        if not target.is_relative_to(resolved):
            raise SaveRefused(f"Artifact path {artifact.path} would leave {folder}; nothing was saved.")
        targets.append((artifact, target))
    written: list[Path] = []
    for artifact, target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                client.download_artifact(run_id, artifact.id, handle)
        except OSError as exc:
            raise SaveRefused(f"Cannot save {artifact.path} in {folder}: {exc.strerror or exc}.") from None
        except DevyardError as exc:
            raise SaveRefused(f"Cannot download {artifact.path}: {exc}") from None
        written.append(target)
    return written
