"""Add recordings to a study from a separate process (the concurrent-writer tests).

Usage: python add_many.py STUDY_DIR START_FILE WRITER RECORDING...

Waits until START_FILE exists (so both writers start together), then adds each RECORDING as
visit ``V<i>`` of subjects ``S1`` and ``S2`` alternately at the site ``nose``: both writers
create the same subjects, site and visits at the same moments. Prints ``done`` at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lsci.study import Study


def main(folder: str, start: str, writer: str, recordings: list[str]) -> None:
    while not Path(start).exists():
        time.sleep(0.005)
    with Study.open(folder) as study:
        for index, recording in enumerate(recordings):
            study.add_recording(
                recording,
                subject=f"S{index % 2 + 1}",
                site="nose",
                visit=f"V{index // 2 + 1}",
                notes=f"writer {writer}",
            )
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
