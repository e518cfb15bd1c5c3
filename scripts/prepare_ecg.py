"""MIT-BIH Arrhythmia Database record 208 (as scipy <= 1.11 ships it in `scipy/misc/ecg.dat`: 5
minutes of lead MLII at 360 Hz) -> WFDB records of 30 s each, the last two held out whole.

    python scripts/prepare_ecg.py ECG_DAT OUT_DIR

Writes OUT_DIR/{train,heldout}/mitdb208_<k>.{hea,dat} with `wfdb.wrsamp`. The file is a numpy
archive of the raw 11-bit samples (baseline 1024, 200 per mV), as scipy's loader reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import wfdb

SAMPLE_RATE = 360
SEGMENT_SECONDS = 30
HELD_OUT = 2  # the last two segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ecg_dat")
    parser.add_argument("out")
    args = parser.parse_args()
    with np.load(args.ecg_dat) as archive:
        millivolts = (archive["ecg"].astype(np.float64) - 1024) / 200
    length = SAMPLE_RATE * SEGMENT_SECONDS
    segments = [millivolts[i : i + length] for i in range(0, len(millivolts) - length + 1, length)]
    for k, segment in enumerate(segments):
        folder = Path(args.out) / ("heldout" if k >= len(segments) - HELD_OUT else "train")
        folder.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(
            f"mitdb208_{k}", fs=SAMPLE_RATE, units=["mV"], sig_name=["MLII"], p_signal=segment[:, None],
            fmt=["212"], adc_gain=[200.0], baseline=[1024], write_dir=str(folder),
            comments=["MIT-BIH Arrhythmia Database record 208, via scipy.misc.electrocardiogram"],
        )  # fmt: skip
    print(f"{len(segments)} records of {SEGMENT_SECONDS} s in {args.out} ({HELD_OUT} held out)")


if __name__ == "__main__":
    main()
