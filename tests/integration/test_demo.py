"""The README's first command, end to end on the embedded moto server, run twice."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from devtools import demo

pytestmark = pytest.mark.integration


def test_the_demo_generates_every_missing_image_and_can_run_again(tmp_path):
    for _ in range(2):
        report = demo.run(tmp_path)

        assert (report["found"], report["queued"], report["generated"], report["failed"]) == (6, 6, 6, 0)
        assert all(user["remaining"] == 0 for user in report["users"].values())
        pngs = sorted(tmp_path.rglob("*.png"))
        assert len(pngs) == 6
        assert {Image.open(io.BytesIO(p.read_bytes())).format for p in pngs} == {"PNG"}
