"""Shared by the command-line entry points."""
import logging
from pathlib import Path


def setup_logging(exp_dir, name: str = "train.log", level: int = logging.INFO) -> None:
    """Log to stderr and to ``<exp_dir>/log/<name>`` (the exp dir's log, as Kaldi keeps it)."""
    Path(exp_dir, "log").mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(Path(exp_dir, "log", name), mode="w")])
