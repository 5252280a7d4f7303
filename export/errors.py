"""Errors of the export command; each carries a message a user can act on."""

from __future__ import annotations


class ExportError(Exception):
    """Base class: the export could not be done. The CLI prints it and exits non-zero."""


class ModelNotFoundError(ExportError):
    """MODEL is neither an alias, a readable local folder, nor a reachable hub id."""

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(f"cannot load {model!r}: {detail}")


class NoCtcHeadError(ExportError):
    """The checkpoint is pretrained only: it has no CTC head, so it cannot transcribe."""

    def __init__(self, model: str, detail: str, alternatives: str) -> None:
        super().__init__(
            f"{model!r} has no CTC head ({detail}). A pretrained-only checkpoint produces speech "
            f"features, not text: it must be fine-tuned with CTC first. Use a fine-tuned "
            f"checkpoint instead; {alternatives}."
        )


class UnsupportedModelError(ExportError):
    """The checkpoint's family or settings are not supported."""

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(f"{model!r} is not supported: {detail}")


class ValidationFailedError(ExportError):
    """One or more exported files disagree with PyTorch beyond their tolerance."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        joined = "; ".join(failures)
        super().__init__(f"validation failed, files not added to the manifest: {joined}")
