"""Benchmark of the data path: make an ImageNet-layout folder of 500x375 JPEG photographs and
measure how fast PIL + torchvision's DataLoader feed validation batches (the reference's data
path), optionally with a torchvision model running on them.

    python tools/bench_data_path.py make DIR [--images 640] [--classes 10]
    python tools/bench_data_path.py loader DIR [--batch-size 32] [--workers 2] [--model resnet18|mobilenet_v2]

`make` writes DIR/{train,val}/<class>/*.JPEG: random 500x375 crops (some 375x500) of the
photographs shipped with scikit-image, saved as baseline 4:2:0 JPEG at quality 90 — the size and
kind of a typical ImageNet validation image. `loader` prints images per second of the DataLoader
alone and, with --model, of DataLoader + FP32 forward pass (torch threads = 2) and of the forward
pass alone on the same batches held in memory (so the share the data path adds). Compare with

    fp8q validate-quantized --architecture resnet18 --model-dir W --images-dir DIR --no-reestimate-bn-stats ...

run on the same folder (its summary line prints img/s, decoding included).
"""
import argparse
import os
import time

import numpy as np


def make(out, images, classes):
    from PIL import Image
    from skimage import data as skdata

    names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "horse", "brick", "grass", "gravel"]
    photos = []
    for n in names:
        try:
            a = getattr(skdata, n)()
        except Exception:  # some sample images need a download; skip them
            continue
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or min(a.shape[:2]) < 256:
            continue  # masks, float arrays and small images are not photographs
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        photos.append(Image.fromarray(a[..., :3]))
    rng = np.random.default_rng(0)
    for split, n in [("val", images), ("train", max(classes, images // 10))]:
        for i in range(n):
            c = i % classes
            d = os.path.join(out, split, f"class{c:03d}")
            os.makedirs(d, exist_ok=True)
            img = photos[int(rng.integers(len(photos)))]
            w, h = (500, 375) if rng.uniform() < 0.8 else (375, 500)
            s = rng.uniform(0.5, 1.0)
            cw, ch = int(img.width * s), int(img.height * s)
            left, top = int(rng.integers(0, img.width - cw + 1)), int(rng.integers(0, img.height - ch + 1))
            crop = img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC)
            crop.save(os.path.join(d, f"{split}_{i:05d}.JPEG"), quality=90)


def loader(root, batch_size, workers, model_name):
    import torch
    import torchvision
    from torchvision import transforms

    torch.set_num_threads(2)
    tf = transforms.Compose([
        transforms.Resize(248), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = torchvision.datasets.ImageFolder(os.path.join(root, "val"), tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False)
    t = time.perf_counter()
    n = sum(x.shape[0] for x, _ in dl)
    print(f"PIL + DataLoader ({workers} workers): {n / (time.perf_counter() - t):.1f} img/s ({n} images)")
    if model_name:
        model = getattr(torchvision.models, model_name)(num_classes=len(ds.classes)).eval()
        with torch.no_grad():
            t = time.perf_counter()
            n = 0
            for x, _ in dl:
                model(x)
                n += x.shape[0]
        e2e = n / (time.perf_counter() - t)
        print(f"PIL + DataLoader + torch {model_name} FP32: {e2e:.1f} img/s")
        # the model alone on the same batches, already in memory: what the data path adds
        batches = [x for x, _ in dl]
        with torch.no_grad():
            t = time.perf_counter()
            for x in batches:
                model(x)
        alone = n / (time.perf_counter() - t)
        print(f"torch {model_name} FP32 alone (same batches, in memory): {alone:.1f} img/s; "
              f"the data path adds {100 * (alone / e2e - 1):.0f}% to the model's time")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--images", type=int, default=640)
    m.add_argument("--classes", type=int, default=10)
    lo = sub.add_parser("loader")
    lo.add_argument("dir")
    lo.add_argument("--batch-size", type=int, default=32)
    lo.add_argument("--workers", type=int, default=2)
    lo.add_argument("--model", default=None)
    a = p.parse_args()
    if a.cmd == "make":
        make(a.dir, a.images, a.classes)
    else:
        loader(a.dir, a.batch_size, a.workers, a.model)


if __name__ == "__main__":
    main()
