"""Scripts that run inside the client environments (MediaPipe Tasks, TFLite Task Library) and their
pins; never imported by edgetailor (``edgetailor.bundle.clients`` runs them as subprocesses)."""
