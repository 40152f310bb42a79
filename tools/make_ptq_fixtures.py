"""Make the small, self-contained PTQ fixture of the repository (crates/fp8q-ptq/tests/data/ptq_small).

The golden PTQ suite (FP8Q_GOLDEN_PTQ) needs ~85 MB of models and images that live outside the
repository. This fixture is small enough to commit and still runs the whole pipeline end to end:

* ``images/{train,val}/<class>/``: four classes, one per photograph shipped with scikit-image
  (astronaut, coffee, chelsea, rocket). Every image is a random crop of its photograph, resized to
  an odd, non-square size and saved the way ImageNet's files are: mostly baseline 4:2:0 JPEG, plus
  4:4:4 and progressive JPEG, a grayscale JPEG, a PNG and a PNG saved under a ``.JPEG`` name.
* ``resnet18_narrow.pth``: torchvision's ResNet-18 layout (BasicBlock [2, 2, 2, 2], torchvision key
  names) with base width 8 instead of 64, trained for a minute on other crops of the same photos.
* ``mobilenet_v2_narrow.pth.tar``: the paper's MobileNetV2 layout (tonylins' key names) with every
  width divided by 4 (head 320 channels), trained the same way, saved in the legacy (pre-1.6,
  non-zip) ``torch.save`` format like the paper's own ``mobilenet_v2.pth.tar``.
* ``expected.json``: what PyTorch, torchvision and Pillow compute, for tests to compare against:
  the sorted validation list, labels, and each model's FP32 logits under torchvision's validation
  transform (Resize(248), CenterCrop(224), ToTensor, Normalize) on ``Image.open(p).convert('RGB')``;
  and each model's per-output-channel weight minima and maxima (the weight quantizers' ranges).

Deterministic (fixed seeds). Run with PyTorch, torchvision, Pillow and scikit-image installed:

    python tools/make_ptq_fixtures.py crates/fp8q-ptq/tests/data/ptq_small
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from torch import nn
from torchvision import transforms
from torchvision.models.resnet import BasicBlock

CLASSES = ["astronaut", "chelsea", "coffee", "rocket"]
TRAIN_PER_CLASS = 3
VAL_PER_CLASS = 4


def photo(name):
    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return Image.fromarray(img[..., :3])


def random_crop(img, rng, out_w, out_h):
    w, h = img.size
    cw = int(rng.uniform(0.45, 0.9) * w)
    ch = min(h, int(cw * out_h / out_w))
    left = int(rng.integers(0, w - cw + 1))
    top = int(rng.integers(0, h - ch + 1))
    crop = img.crop((left, top, left + cw, top + ch)).resize((out_w, out_h), Image.BICUBIC)
    if rng.uniform() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return crop


def save_variant(img, path_stem, k):
    """Save the k-th image of a class in one of the ways ImageNet's files come."""
    kind = k % 8
    if kind == 5:
        img.save(path_stem + ".JPEG", quality=88, subsampling=0)  # 4:4:4
    elif kind == 6:
        img.save(path_stem + ".JPEG", quality=80, progressive=True)
    elif kind == 3:
        img.convert("L").save(path_stem + ".JPEG", quality=90)  # grayscale JPEG
    elif kind == 7:
        img.save(path_stem + ".png")
    elif kind == 2:
        img.save(path_stem + ".JPEG", format="PNG")  # a PNG under a .JPEG name
    else:
        img.save(path_stem + ".JPEG", quality=85)  # baseline 4:2:0


def make_images(out, rng):
    photos = {c: photo(c) for c in CLASSES}
    k = 0
    for split, n in [("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)]:
        for c in CLASSES:
            d = os.path.join(out, "images", split, c)
            os.makedirs(d)
            for i in range(n):
                w = int(rng.integers(230, 300))
                h = int(rng.integers(230, 300))
                save_variant(random_crop(photos[c], rng, w, h), os.path.join(d, f"{c}_{split}_{i}"), k)
                k += 1
    return photos


class NarrowResNet18(nn.Module):
    def __init__(self, base=8, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base
        for i in range(4):
            planes = base << i
            blocks = []
            for j in range(2):
                stride = 2 if i > 0 and j == 0 else 1
                down = None
                if stride != 1 or cin != planes:
                    down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                blocks.append(BasicBlock(cin, planes, stride, down))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_bn(cin, cout, k, stride, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """tonylins' block: ``conv`` is one Sequential, indices as in the paper's checkpoint."""

    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        if t == 1:
            layers = conv_bn(hidden, hidden, 3, stride, hidden) + conv_bn(hidden, cout, 1, 1, act=False)
        else:
            layers = conv_bn(cin, hidden, 1, 1) + conv_bn(hidden, hidden, 3, stride, hidden) + conv_bn(
                hidden, cout, 1, 1, act=False
            )
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class NarrowMobileNetV2(nn.Module):
    """The paper's MobileNetV2 layout with every width divided by 4 (head 320 channels)."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes=4, div=4, head=320):
        super().__init__()
        cin = 32 // div
        features = [nn.Sequential(*conv_bn(3, cin, 3, 2))]
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(cin, c // div, s if i == 0 else 1, t))
                cin = c // div
        features.append(nn.Sequential(*conv_bn(cin, head, 1, 1)))
        features.append(nn.AvgPool2d(7))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head, classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


NORMALIZE = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
VAL_TRANSFORM = transforms.Compose([transforms.Resize(248), transforms.CenterCrop(224), transforms.ToTensor(), NORMALIZE])


def train(model, photos, rng, steps=150):
    """A minute of training on fresh random crops so that the logits mean something."""
    aug = transforms.Compose([transforms.RandomResizedCrop(224, scale=(0.2, 1.0)), transforms.RandomHorizontalFlip(),
                              transforms.ColorJitter(0.3, 0.3, 0.3), transforms.ToTensor(), NORMALIZE])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        xs, ys = [], []
        for _ in range(16):
            c = int(rng.integers(0, len(CLASSES)))
            xs.append(aug(random_crop(photos[CLASSES[c]], rng, 256, 256)))
            ys.append(c)
        loss = nn.functional.cross_entropy(model(torch.stack(xs)), torch.tensor(ys))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss)


def val_list(out):
    """torchvision ImageFolder's order: sorted classes, sorted files."""
    items = []
    root = os.path.join(out, "images", "val")
    for ci, c in enumerate(sorted(os.listdir(root))):
        for f in sorted(os.listdir(os.path.join(root, c))):
            items.append((os.path.join(root, c, f), ci))
    return items


def weight_ranges(model):
    ranges = {}
    for name, p in model.state_dict().items():
        if name.endswith(".weight") and p.dim() in (2, 4):
            flat = p.reshape(p.shape[0], -1)
            ranges[name[: -len(".weight")]] = {
                "min": flat.min(1).values.tolist(),
                "max": flat.max(1).values.tolist(),
            }
    return ranges


def main(out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    rng = np.random.default_rng(8)
    torch.manual_seed(8)
    photos = make_images(out, rng)
    items = val_list(out)
    x = torch.stack([VAL_TRANSFORM(Image.open(p).convert("RGB")) for p, _ in items])
    expected = {
        "val_files": [os.path.relpath(p, os.path.join(out, "images", "val")) for p, _ in items],
        "labels": [c for _, c in items],
        "models": {},
    }
    for name, model, legacy in [
        ("resnet18_narrow.pth", NarrowResNet18(), False),
        ("mobilenet_v2_narrow.pth.tar", NarrowMobileNetV2(), True),
    ]:
        final_loss = train(model, photos, rng)
        with torch.no_grad():
            logits = model(x)
        torch.save(model.state_dict(), os.path.join(out, name), _use_new_zipfile_serialization=not legacy)
        expected["models"][name] = {
            "train_loss": final_loss,
            "fp32_logits": logits.tolist(),
            "fp32_top1": float((logits.argmax(1) == torch.tensor(expected["labels"])).float().mean()),
            "weight_ranges": weight_ranges(model),
        }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1])
