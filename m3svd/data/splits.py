"""The official M3SVD split, as versioned data (``docs/dataset-m3svd.md``).

The maintainers published the 30 test clips (the GitHub ``Video/test`` folder) and recommend 190 train /
30 test; no train list was published, so train is every clip of a full release that is not a test clip.
"""

from __future__ import annotations

SPLIT_VERSION = "m3svd-split-v1"

TEST_CLIPS = (
    "0111_1716", "0111_1753", "0111_1803", "0112_1705", "0112_1707", "0112_1722", "0112_1732", "0113_1647",
    "0113_1714", "0114_1537", "0114_1551", "0114_1609", "0114_1611", "0115_1829", "0115_1831", "0115_1834",
    "0115_1847", "0117_1605", "0117_1620", "0118_1803", "0118_1904", "0118_1913", "1204_1139", "1207_1712",
    "1207_1739", "1208_1654", "1208_1711", "1208_1717", "1230_1154", "1230_1202",
)
N_TRAIN, N_TEST = 190, 30


def split_of(clip: str) -> str:
    """``"test"`` for the 30 official test clips, ``"train"`` for every other clip."""
    return "test" if clip in TEST_CLIPS else "train"
