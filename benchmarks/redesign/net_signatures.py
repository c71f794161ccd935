"""Every network family built on 32×32 and 8×8 image data (generator, critic, 3-output critic, features) at seed 0:
the sha256 of each state_dict, or the error. Run on two commits and diff the outputs: the same networks.

    PYTHONPATH=<checkout>/src python benchmarks/redesign/net_signatures.py > before.json
"""

import hashlib
import json

import torch

from ebmlab.data import get_dataset
from ebmlab.nets import build

FAMILIES = ("conv", "dcgan", "ebmbb32", "vgan", "lbt", "ebmbb_resnet", "gebm_resnet")


def build_one(spec, net: str, what: str):
    if what == "generator":
        return build.generator(spec, 16, net=net, width=8, batchnorm=True), None
    if what == "critic":
        return build.critic(spec, net=net, width=8), None
    if what == "critic3":
        return build.critic(spec, 3, net=net, width=8), None
    return build.features(spec, net=net, width=8)


def main() -> dict[str, str]:
    out = {}
    for data in ("stacked_digits32", "digits"):
        spec = get_dataset(data).spec
        for net in FAMILIES:
            for what in ("generator", "critic", "features", "critic3"):
                torch.manual_seed(0)
                try:
                    m, feat = build_one(spec, net, what)
                except ValueError as exc:
                    out[f"{data}/{net}/{what}"] = f"error: {exc}"
                    continue
                h = hashlib.sha256()
                for k, v in m.state_dict().items():
                    h.update(k.encode())
                    h.update(v.numpy().tobytes())
                out[f"{data}/{net}/{what}"] = f"{h.hexdigest()[:16]} {type(m).__name__}" + (f" F={feat}" if feat else "")
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=0))
