"""The model zoo: one named entry per architecture (``UNTRAINED``) and per published checkpoint
(``PUBLISHED``), each written out in full; ``models.BUILDERS`` maps an entry's ``arch`` to the
class that builds it.

Everything needed to use a checkpoint correctly lives in its entry: architecture arguments,
classes, palette, the input normalization the weights were trained with, native input size,
decoder variant, source, checksum and licence.
"""
from collections import OrderedDict
from typing import Dict, NamedTuple, Optional, Tuple

from .classes import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CITYSCAPES_TRAINID_TO_LABELID,
)

ORIGINAL_URL = "https://github.com/sacmehta/ESPNet/raw/master/pretrained/"
ORIGINAL_LICENCE = "MIT (github.com/sacmehta/ESPNet)"


class Normalization(NamedTuple):
    """out = (pixel - mean) / std * scale, channels in ``order`` (what the weights expect)."""
    order: str            # "bgr" or "rgb"
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    scale: float          # the original ESPNet code divides by 255 once more after (x-mean)/std


# Cityscapes training statistics of the original code (BGR, 0..255).
CITYSCAPES_NORM = Normalization(
    "bgr", (72.3923111, 82.90893555, 73.15840149), (45.3192215, 46.15289307, 44.91483307), 1 / 255.0)
# CamVid training split, computed as the original loader does (mean over images of each image's
# per-channel mean and std, BGR); test_zoo recomputes them from the data.
CAMVID_NORM = Normalization(
    "bgr", (110.33103, 108.40886, 105.03319), (72.12571, 72.69075, 69.90435), 1 / 255.0)


class ModelEntry(NamedTuple):
    name: str
    arch: str                          # espnet | espnet-a/-b/-c | enet | erfnet | erfnet-encoder
    arch_args: Dict[str, object]
    classes: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    normalization: Normalization
    input_size: Tuple[int, int]        # native (width, height)
    void_id: Optional[int]             # output id that means void / unlabeled, if any
    dataset: str
    description: str
    weights_file: Optional[str] = None  # path relative to the publication folder
    sha256: Optional[str] = None
    licence: str = ""
    label_ids: Optional[Tuple[int, ...]] = None  # train id -> dataset label id
    parameters: Optional[int] = None   # parameters in the checkpoint (the tests load and count)

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def url(self):
        return ORIGINAL_URL + self.weights_file if self.weights_file else None

    @property
    def output_stride(self):
        """1 for full-resolution logits, 8 for the encoder-only variants."""
        return 8 if self.arch in ENCODER_ARCHS else 1


# Architectures whose logits are at 1/8 of the input (first training stages, ESPNet-A/B/C).
ENCODER_ARCHS = ("espnet-a", "espnet-b", "espnet-c", "erfnet-encoder")

_CITY = dict(classes=CITYSCAPES_CLASSES, palette=CITYSCAPES_PALETTE, normalization=CITYSCAPES_NORM,
             input_size=(1024, 512), void_id=19, dataset="cityscapes",
             label_ids=CITYSCAPES_TRAINID_TO_LABELID)
_CITY_PUBLISHED = dict(licence=ORIGINAL_LICENCE, **_CITY)

# The architectures, Cityscapes-shaped, without weights (training from scratch, benchmarks).
UNTRAINED = (
    ModelEntry(name="espnet", arch="espnet",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 8, "k": 5, "decoder_skip": "l1"},
               description="ESPNet: ESPNet-C encoder + reduce-upsample-merge decoder "
                           "(architecture, no weights)", **_CITY),
    ModelEntry(name="espnet-a", arch="espnet-a",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 8, "k": 5},
               description="ESPNet-A: plain stack of ESP modules, 1/8 output "
                           "(architecture, no weights)", **_CITY),
    ModelEntry(name="espnet-b", arch="espnet-b",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 8, "k": 5},
               description="ESPNet-B: ESPNet-A with shared level features, 1/8 output "
                           "(architecture, no weights)", **_CITY),
    ModelEntry(name="espnet-c", arch="espnet-c",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 8, "k": 5},
               description="ESPNet-C: ESPNet-B with input reinforcement, 1/8 output "
                           "(architecture, no weights)", **_CITY),
    ModelEntry(name="enet", arch="enet", arch_args={"classes": 20},
               description="ENet (Paszke et al. 2016), the paper's baseline (no weights)", **_CITY),
    ModelEntry(name="erfnet", arch="erfnet", arch_args={"classes": 20},
               description="ERFNet (Romera et al. 2017), the paper's second baseline "
                           "(no weights)", **_CITY),
)

# The checkpoints published with the original code (ORIGINAL_URL + weights_file).
PUBLISHED = (
    ModelEntry(name="espnet-p2q3-cityscapes", arch="espnet",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 3, "k": 5, "decoder_skip": "l1"},
               parameters=202649, weights_file="decoder/espnet_p_2_q_3.pth",
               sha256="8f3eb198fb15e5da7fa8d258d5f0fc4a4213e1124f415f6fc54d2772d585a7fc",
               description="ESPNet alpha2=2 alpha3=3, Cityscapes, published", **_CITY_PUBLISHED),
    ModelEntry(name="espnet-c-p2q3-cityscapes", arch="espnet-c",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 3, "k": 5},
               parameters=187529, weights_file="encoder/espnet_p_2_q_3.pth",
               sha256="5101e9bc90dd2a57d8460e70cdfaa743f76317bf806d2d1c4adb635c8d392e77",
               description="ESPNet-C alpha2=2 alpha3=3, Cityscapes, published", **_CITY_PUBLISHED),
    ModelEntry(name="espnet-p2q5-cityscapes", arch="espnet",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 5, "k": 5, "decoder_skip": "l1"},
               parameters=267417, weights_file="decoder/espnet_p_2_q_5.pth",
               sha256="0378be45080ca5edfc416e9ba06b04e74ec5e2ec4baf56597f25a894a8593942",
               description="ESPNet alpha2=2 alpha3=5, Cityscapes, published", **_CITY_PUBLISHED),
    ModelEntry(name="espnet-c-p2q5-cityscapes", arch="espnet-c",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 5, "k": 5},
               parameters=252297, weights_file="encoder/espnet_p_2_q_5.pth",
               sha256="ec028eb60b08a56583eb9d310f5f4f7c4bc70972009030c25f1414dc48c916d6",
               description="ESPNet-C alpha2=2 alpha3=5, Cityscapes, published", **_CITY_PUBLISHED),
    ModelEntry(name="espnet-p2q8-cityscapes", arch="espnet",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 8, "k": 5, "decoder_skip": "l1"},
               parameters=364569, weights_file="decoder/espnet_p_2_q_8.pth",
               sha256="343b0e77e8545d36113c4f3efbf1ee349256f25c97c9f9d5ddefe45f2f49763e",
               description="ESPNet alpha2=2 alpha3=8, Cityscapes, published", **_CITY_PUBLISHED),
    ModelEntry(name="espnet-c-p2q8-cityscapes", arch="espnet-c",
               arch_args={"classes": 20, "alpha2": 2, "alpha3": 8, "k": 5},
               parameters=349449, weights_file="encoder/espnet_p_2_q_8.pth",
               sha256="836f28a2a31bd4fc8997001ab6b620d1f9b7b274a03b32d9f3a95c17a011b438",
               description="ESPNet-C alpha2=2 alpha3=8, Cityscapes, published", **_CITY_PUBLISHED),
    ModelEntry(name="espnet-p2q8-camvid", arch="espnet",
               arch_args={"classes": 12, "alpha2": 2, "alpha3": 8, "k": 5,
                          "decoder_skip": "l1_rgb"},
               classes=CAMVID_CLASSES, palette=CAMVID_PALETTE, normalization=CAMVID_NORM,
               input_size=(480, 360), void_id=11, dataset="camvid", parameters=354517,
               weights_file="decoder/espnet_p_2_q_8_camvid.pth",
               sha256="7d354a257170322086dcd4c1e89a482454cf2c9d30b085e70883878dd59301af",
               licence=ORIGINAL_LICENCE,
               description="ESPNet alpha2=2 alpha3=8, CamVid (11 classes + void), published; "
                           "decoder skip includes the RGB reinforcement (19+C)"),
)

_ZOO = OrderedDict((entry.name, entry) for entry in UNTRAINED + PUBLISHED)


def names():
    return list(_ZOO)


def entries():
    return list(_ZOO.values())


def get(name: str) -> ModelEntry:
    try:
        return _ZOO[name]
    except KeyError:
        raise KeyError("unknown model %r; known models: %s" % (name, ", ".join(_ZOO))) from None


def register(entry: ModelEntry) -> ModelEntry:
    """Adds a user entry (for example a checkpoint trained with ``espnet-ros train``)."""
    _ZOO[entry.name] = entry
    return entry
