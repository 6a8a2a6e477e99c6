"""``espnet-ros models``: the zoo with parameters, GMACs and size."""
import json

from ..models import build, zoo
from ..models.complexity import count_macs, count_parameters, serialized_megabytes
from ..models.weights import cache_dir

MACS_SIZE = (1024, 512)


def add_parser(sub):
    p = sub.add_parser("models", help="list the model zoo with parameters, GMACs and size")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def describe(entry):
    model = build(entry)
    cached = cache_dir() / entry.weights_file if entry.weights_file else None
    return {
        "name": entry.name, "arch": entry.arch, "dataset": entry.dataset,
        "classes": entry.num_classes, "input_size": list(entry.input_size),
        "parameters": count_parameters(model),
        "gmacs_1024x512": round(count_macs(model, *MACS_SIZE) / 1e9, 3),
        "size_mb": round(serialized_megabytes(model), 3),
        "weights": entry.weights_file or "", "sha256": entry.sha256 or "",
        "cached": bool(cached and cached.is_file()), "url": entry.url or "",
        "licence": entry.licence, "description": entry.description,
    }


def run(args):
    rows = [describe(e) for e in zoo.entries()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "arch", "classes", "params", "GMACs@1024x512", "size MB", "weights")
    table = [header] + [(r["name"], r["arch"], str(r["classes"]), "{:,}".format(r["parameters"]),
                         "%.3f" % r["gmacs_1024x512"], "%.2f" % r["size_mb"],
                         ("cached" if r["cached"] else "download") if r["weights"] else "-")
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0
