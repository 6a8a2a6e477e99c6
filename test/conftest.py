"""Shared fixtures. Third-party data is read from the folder named by ESPNET_ROS_DATA."""
import os
from pathlib import Path

import pytest

DATA_ENV = "ESPNET_ROS_DATA"


def _data_root():
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else None


@pytest.fixture(scope="session")
def data_dir():
    root = _data_root()
    if root is None:
        pytest.skip("%s is not set: point it at the shared data folder" % DATA_ENV)
    if not (root / "README.md").is_file():
        pytest.fail("%s=%s does not hold the shared data" % (DATA_ENV, root))
    return root


@pytest.fixture(scope="session", autouse=True)
def weights_from_local_mirror(tmp_path_factory):
    """Weights come through the real resolve/download path, from the local publication copy."""
    root = _data_root()
    saved = {k: os.environ.get(k) for k in ("ESPNET_ROS_WEIGHTS_DIR", "ESPNET_ROS_WEIGHTS_MIRROR")}
    os.environ["ESPNET_ROS_WEIGHTS_DIR"] = str(tmp_path_factory.mktemp("weights_cache"))
    if root is not None:
        os.environ["ESPNET_ROS_WEIGHTS_MIRROR"] = str(root / "espnet_pretrained")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def city_frame(data_dir):
    import cv2
    image = cv2.imread(str(data_dir / "cityscapes_samples" /
                           "frankfurt_000000_000294_leftImg8bit.png"), cv2.IMREAD_COLOR)
    assert image is not None
    return image
