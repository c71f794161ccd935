"""Every network family built on 32×32 and 8×8 image data (generator, critic, 3-output critic, features) at seed 0:
the sha256 of each state_dict, or the error. Run on two commits and diff the outputs: the same networks.

    PYTHONPATH=<checkout>/src python benchmarks/redesign/net_signatures.py > before.json
"""
import hashlib, json, torch
from ebmlab.data import get_dataset
from ebmlab.nets import build
out = {}
for data in ("stacked_digits32", "digits"):
    try:
        spec = get_dataset(data).spec
    except Exception as e:
        print(data, e); continue
    for net in ("conv", "dcgan", "ebmbb32", "vgan", "lbt", "ebmbb_resnet", "gebm_resnet"):
        for what in ("generator", "critic", "features", "critic3"):
            torch.manual_seed(0)
            try:
                if what == "generator": m = build.generator(spec, 16, net=net, width=8, batchnorm=True)
                elif what == "critic": m = build.critic(spec, net=net, width=8)
                elif what == "critic3": m = build.critic(spec, 3, net=net, width=8)
                else: m, F = build.features(spec, net=net, width=8)
                h = hashlib.sha256()
                for k, v in m.state_dict().items(): h.update(k.encode()); h.update(v.numpy().tobytes())
                out[f"{data}/{net}/{what}"] = h.hexdigest()[:16] + (f" F={F}" if what == "features" else "") + " " + type(m).__name__
            except Exception as e:
                out[f"{data}/{net}/{what}"] = "error: " + str(e)
print(json.dumps(out, indent=0))
