"""The cost of flushing itself: one small MLP training step (2-128-128-1, batch 256, Adam, one thread) with
subnormals kept and flushed alternating step by step, 3000 steps: the median microseconds of each setting.

    python benchmarks/denormal/alternate.py
"""

import statistics
import time

import torch


def main() -> None:
    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(2, 128), torch.nn.LeakyReLU(0.2), torch.nn.Linear(128, 128),
                              torch.nn.LeakyReLU(0.2), torch.nn.Linear(128, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(256, 2)

    def step() -> None:
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()

    for _ in range(50):
        step()
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(3000):
        flush = bool(i % 2)
        torch.set_flush_denormal(flush)
        t = time.perf_counter()
        step()
        times[flush].append(time.perf_counter() - t)
    torch.set_flush_denormal(False)
    print({("flushed" if k else "kept"): round(statistics.median(v) * 1e6, 1) for k, v in times.items()}, "µs")


if __name__ == "__main__":
    main()
