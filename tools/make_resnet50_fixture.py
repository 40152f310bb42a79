"""Make the narrow ResNet-50 parity fixture for crates/fp8q-ptq/tests/resnet50_parity.rs.

torchvision's ResNet-50 (Bottleneck blocks [3, 4, 6, 3], stride on the 3x3 conv, torchvision key
names) with every width divided by 16 (stem 4 channels, planes 4/8/16/32, 10 classes), random
weights and non-trivial BN statistics, in eval mode. Writes the checkpoint (torch.save zip) and
the input with PyTorch's logits as raw little-endian f32 (`.f32`, shapes in the file names'
companion JSON). Run with any PyTorch + torchvision:

    python tools/make_resnet50_fixture.py crates/fp8q-ptq/tests/data
"""
import json
import sys

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck


class NarrowResNet50(nn.Module):
    def __init__(self, base=4, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base
        for i, n in enumerate([3, 4, 6, 3]):
            planes = base << i
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                down = None
                if stride != 1 or cin != planes * 4:
                    down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
                blocks.append(Bottleneck(cin, planes, stride, down))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def main(out):
    torch.manual_seed(50)
    model = NarrowResNet50()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        logits = model(x)
    torch.save(model.state_dict(), f"{out}/resnet50_narrow.pth")
    x.numpy().astype("<f4").tofile(f"{out}/resnet50_narrow_input.f32")
    logits.numpy().astype("<f4").tofile(f"{out}/resnet50_narrow_logits.f32")
    with open(f"{out}/resnet50_narrow.json", "w") as f:
        json.dump({"input_shape": list(x.shape), "logits_shape": list(logits.shape),
                   "params": sum(p.numel() for p in model.parameters())}, f)


if __name__ == "__main__":
    main(sys.argv[1])
