"""Models: ESPNet variants, ENet, ERFNet, the zoo of named checkpoints and weight resolution."""
import functools

from . import registry, zoo
from .enet import ENet
from .erfnet import ERFNet, ERFNetEncoder
from .espnet import ESPNet, ESPNetEncoder
from .weights import WeightsError, load_state_dict, resolve

# Each architecture's builder; a zoo entry's arch_args are its keyword arguments.
BUILDERS = {
    "espnet": ESPNet,
    "espnet-a": functools.partial(ESPNetEncoder, variant="A"),
    "espnet-b": functools.partial(ESPNetEncoder, variant="B"),
    "espnet-c": functools.partial(ESPNetEncoder, variant="C"),
    "enet": ENet,
    "erfnet": ERFNet,
    "erfnet-encoder": ERFNetEncoder,
}


def build(entry):
    """Instantiates the architecture of a zoo entry (random weights)."""
    try:
        builder = BUILDERS[entry.arch]
    except KeyError:
        raise ValueError("unknown architecture %r" % entry.arch) from None
    return builder(**entry.arch_args)


def create_model(name, weights=None, pretrained=True, allow_download=True):
    """Builds the named zoo model (or the model of a training checkpoint given by its path),
    loading its weights with strict key matching.

    ``weights`` overrides the published file; ``pretrained=False`` leaves random weights
    (for training and benchmarks). An architecture entry without published weights needs
    ``weights`` unless ``pretrained=False``. Returns (model in eval mode, entry).
    """
    entry, weights = registry.lookup(name, weights)
    model = build(entry)
    if weights or pretrained:
        path = resolve(entry, weights, allow_download=allow_download)
        state = load_state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError("weights %s do not fit model %r (%s, %d classes): %s"
                               % (path, name, entry.description or entry.arch,
                                  entry.num_classes,
                                  state_mismatch(model.state_dict(), state) or exc)) from None
    return model.eval(), entry


def state_mismatch(expected, given):
    """One line naming the first tensor that does not fit, and how many do not; "" if all do.

    (PyTorch's own message lists every key: dozens of lines for a wrong architecture.)
    """
    missing = [k for k in expected if k not in given
               and not k.endswith("num_batches_tracked")]  # old checkpoints: torch adds it
    unexpected = [k for k in given if k not in expected]
    shapes = [k for k in expected if k in given and
              tuple(getattr(given[k], "shape", ())) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return ""
    if shapes:
        key = shapes[0]
        first = "first mismatching tensor %r: %s in the file, %s in the model" % (
            key, list(getattr(given[key], "shape", ())), list(expected[key].shape))
    elif missing:
        first = "first missing tensor %r" % missing[0]
    else:
        first = "first unexpected tensor %r" % unexpected[0]
    return "%s (%d of other shape, %d missing, %d unexpected)" % (
        first, len(shapes), len(missing), len(unexpected))


__all__ = ["BUILDERS", "ENet", "ERFNet", "ERFNetEncoder", "ESPNet", "ESPNetEncoder", "WeightsError",
           "build", "create_model", "load_state_dict", "resolve", "state_mismatch", "zoo"]
