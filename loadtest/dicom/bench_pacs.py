"""PACS: what searching and importing a study costs, against a real Orthanc on loopback.

Starts Debian's Orthanc with its own configuration (as the tests do), stores a CT study of
``--images`` 512×512 slices through its REST API, then times the study-level C-FIND of the
patient (``c_find_studies``, one association) and the C-GET of the whole study into a
folder (``c_get_study``: the DICOM transfer the background import does before filing).

    .venv/bin/python -m loadtest.dicom.bench_pacs --images 100
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    from core.config import Settings
    from dossier.documents.pacs import c_find_studies, c_get_study
    from tests.support.documents import dicom_bytes
    from tests.support.orthanc import Orthanc

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--finds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        o = Orthanc(root / "orthanc", consilium_ae="CONSILIUM", consilium_port=11112)
        o.start()
        try:
            study, series = generate_uid(), generate_uid()
            pixels = np.tile(np.linspace(0, 2000, 512, dtype=np.uint16), (512, 1))
            size = 0
            for i in range(args.images):
                ds = pydicom.dcmread(
                    io.BytesIO(dicom_bytes(name="BENCH^PAUL", patient_id="IPP-B", pixels=pixels))
                )
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, i + 1
                buf = io.BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                size += len(buf.getvalue())
                o.store(buf.getvalue())
            settings = Settings(
                dev=True, pacs_ae_title="ORTHANC", pacs_host="127.0.0.1", pacs_port=o.dicom_port
            )
            finds = []
            for _ in range(args.finds):
                t0 = time.perf_counter()
                [found] = c_find_studies(settings, [{"PatientID": "IPP-B"}])
                finds.append(time.perf_counter() - t0)
            print(
                f"C-FIND (study level, one association): median "
                f"{statistics.median(finds) * 1000:.1f} ms over {args.finds}"
            )
            into = root / "get"
            into.mkdir()
            t0 = time.perf_counter()
            paths = c_get_study(settings, found.study_uid, into, lambda total, n: None)
            dt = time.perf_counter() - t0
            print(
                f"C-GET of {len(paths)} instances ({size / 1e6:.1f} MB): {dt:.2f} s, "
                f"{len(paths) / dt:.0f} instances/s, {size / 1e6 / dt:.1f} MB/s"
            )
        finally:
            o.stop()


if __name__ == "__main__":
    main()
