"""Independent PyTorch builds of zoo models (torchvision is not installed), written from
torch.nn with torchvision's / the papers' layouts and state-dict names, as test oracles."""
from __future__ import annotations

import torch
import torch.nn as tnn


class LeNet5(tnn.Module):
    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(in_channels, 6, 5, padding=2), tnn.ReLU(), tnn.AvgPool2d(2, 2),
            tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.AvgPool2d(2, 2))
        self.classifier = tnn.Sequential(
            tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
            tnn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(tnn.Module):
    def __init__(self, inp, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + idt)


class ResNet18(tnn.Module):
    """torchvision's resnet18 layout (BasicBlock, [2, 2, 2, 2])."""

    def __init__(self, num_classes=1000, in_channels=3, layers=(2, 2, 2, 2)):
        super().__init__()
        self.conv1 = tnn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        inp = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            ds = None
            if stride != 1 or inp != planes:
                ds = tnn.Sequential(tnn.Conv2d(inp, planes, 1, stride, bias=False),
                                    tnn.BatchNorm2d(planes))
            blocks = [BasicBlock(inp, planes, stride, ds)]
            blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            inp = planes
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class CifarBlock(tnn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.stride, self.pad = stride, planes - inp

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        sc = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            lo = self.pad // 2
            sc = torch.nn.functional.pad(sc, (0, 0, 0, 0, lo, self.pad - lo))
        return torch.relu(out + sc)


class CifarResNet(tnn.Module):
    """He et al. 2016, section 4.2, option-A shortcuts."""

    def __init__(self, depth=20, num_classes=10, in_channels=3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = tnn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        inp = 16
        for i, (w, s) in enumerate(zip((16, 32, 64), (1, 2, 2))):
            blocks = []
            for j in range(n):
                blocks.append(CifarBlock(inp, w, s if j == 0 else 1))
                inp = w
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(64, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


def _cba(i, o, k=3, s=1, g=1, act=tnn.ReLU6):
    return tnn.Sequential(tnn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False),
                          tnn.BatchNorm2d(o), act())


class InvertedResidual(tnn.Module):
    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hidden = int(round(inp * t))
        self.res = stride == 1 and inp == oup
        layers = [_cba(inp, hidden, 1)] if t != 1 else []
        layers += [_cba(hidden, hidden, 3, stride, hidden), tnn.Conv2d(hidden, oup, 1, bias=False),
                   tnn.BatchNorm2d(oup)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


def _div(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


class MobileNetV2(tnn.Module):
    """torchvision's mobilenet_v2 layout."""

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0, dropout=0.2,
                 small_input=False):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]
        c = _div(32 * width_mult)
        last = _div(1280 * max(1.0, width_mult))
        feats = [_cba(in_channels, c, 3, 1 if small_input else 2)]
        first = small_input
        for t, ch, n, s in cfg:
            if s == 2 and first:
                s, first = 1, False
            o = _div(ch * width_mult)
            for i in range(n):
                feats.append(InvertedResidual(c, o, s if i == 0 else 1, t))
                c = o
        feats.append(_cba(c, last, 1))
        self.features = tnn.Sequential(*feats)
        self.classifier = tnn.Sequential(tnn.Dropout(dropout), tnn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class MobileNetV1(tnn.Module):
    """Howard et al. 2017, Table 1 (names as convnet's MobileNetV1)."""

    def __init__(self, num_classes=1000, in_channels=3, small_input=False):
        super().__init__()
        cfg = [(64, 1), (128, 1 if small_input else 2), (128, 1), (256, 2), (256, 1), (512, 2),
               (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
        layers = [_cba(in_channels, 32, 3, 1 if small_input else 2, act=tnn.ReLU)]
        c = 32
        for o, s in cfg:
            blk = tnn.Module()
            blk.depthwise = _cba(c, c, 3, s, c, act=tnn.ReLU)
            blk.pointwise = _cba(c, o, 1, act=tnn.ReLU)
            blk.forward = lambda x, b=blk: b.pointwise(b.depthwise(x))
            layers.append(blk)
            c = o
        self.features = tnn.Sequential(*layers)
        self.classifier = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(1024, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def _shuffle(x, g):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleBlock(tnn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = tnn.Sequential(
                tnn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), tnn.BatchNorm2d(inp),
                tnn.Conv2d(inp, bf, 1, bias=False), tnn.BatchNorm2d(bf), tnn.ReLU())
        else:
            self.branch1 = tnn.Sequential()
        self.branch2 = tnn.Sequential(
            tnn.Conv2d(inp if stride > 1 else bf, bf, 1, bias=False), tnn.BatchNorm2d(bf),
            tnn.ReLU(), tnn.Conv2d(bf, bf, 3, stride, 1, groups=bf, bias=False),
            tnn.BatchNorm2d(bf), tnn.Conv2d(bf, bf, 1, bias=False), tnn.BatchNorm2d(bf),
            tnn.ReLU())

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return _shuffle(out, 2)


class ShuffleNetV2(tnn.Module):
    """torchvision's shufflenet_v2 layout."""

    def __init__(self, repeats=(4, 8, 4), widths=(24, 116, 232, 464, 1024), num_classes=1000,
                 in_channels=3, small_input=False):
        super().__init__()
        c = widths[0]
        self.conv1 = tnn.Sequential(tnn.Conv2d(in_channels, c, 3, 1 if small_input else 2, 1,
                                               bias=False),
                                    tnn.BatchNorm2d(c), tnn.ReLU())
        self.maxpool = tnn.Identity() if small_input else tnn.MaxPool2d(3, 2, 1)
        for i, (r, o) in enumerate(zip(repeats, widths[1:4])):
            blocks = [ShuffleBlock(c, o, 2)] + [ShuffleBlock(o, o, 1) for _ in range(r - 1)]
            setattr(self, f"stage{i + 2}", tnn.Sequential(*blocks))
            c = o
        self.conv5 = tnn.Sequential(tnn.Conv2d(c, widths[-1], 1, bias=False),
                                    tnn.BatchNorm2d(widths[-1]), tnn.ReLU())
        self.fc = tnn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean((2, 3)))


class InceptionC(tnn.Module):
    """torchvision's Inception-v3 InceptionC block (BasicConv2d = conv, bn eps 1e-3, relu)."""

    def __init__(self, inp, c7):
        super().__init__()

        def bc(i, o, **kw):
            m = tnn.Module()
            m.conv = tnn.Conv2d(i, o, bias=False, **kw)
            m.bn = tnn.BatchNorm2d(o, eps=0.001)
            m.forward = lambda x, m=m: torch.relu(m.bn(m.conv(x)))
            return m

        self.branch1x1 = bc(inp, 192, kernel_size=1)
        self.branch7x7_1 = bc(inp, c7, kernel_size=1)
        self.branch7x7_2 = bc(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = bc(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = bc(inp, c7, kernel_size=1)
        self.branch7x7dbl_2 = bc(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = bc(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = bc(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = bc(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = bc(inp, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(torch.nn.functional.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), b7, bd, bp], 1)


class ViT(tnn.Module):
    """torchvision's VisionTransformer layout, from torch.nn pieces."""

    def __init__(self, image_size, patch, layers, heads, dim, mlp, num_classes, in_channels):
        super().__init__()
        self.patch, self.dim = patch, dim
        self.conv_proj = tnn.Conv2d(in_channels, dim, patch, patch)
        self.class_token = tnn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = tnn.Module()
        seq = (image_size // patch) ** 2 + 1
        self.encoder.pos_embedding = tnn.Parameter(torch.randn(1, seq, dim) * 0.02)
        self.encoder.layers = tnn.Sequential()
        for i in range(layers):
            blk = tnn.Module()
            blk.ln_1 = tnn.LayerNorm(dim, eps=1e-6)
            blk.self_attention = tnn.MultiheadAttention(dim, heads, batch_first=True)
            blk.ln_2 = tnn.LayerNorm(dim, eps=1e-6)
            blk.mlp = tnn.Sequential(tnn.Linear(dim, mlp), tnn.GELU(), tnn.Dropout(0),
                                     tnn.Linear(mlp, dim), tnn.Dropout(0))
            self.encoder.layers.add_module(f"encoder_layer_{i}", blk)
        self.encoder.ln = tnn.LayerNorm(dim, eps=1e-6)
        self.heads = tnn.Sequential()
        self.heads.add_module("head", tnn.Linear(dim, num_classes))

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], 1) + self.encoder.pos_embedding
        for blk in self.encoder.layers:
            y = blk.ln_1(x)
            y = blk.self_attention(y, y, y, need_weights=False)[0]
            x = x + y
            x = x + blk.mlp(blk.ln_2(x))
        return self.heads(self.encoder.ln(x)[:, 0])


def _basic(i, o, **kw):
    m = tnn.Module()
    m.conv = tnn.Conv2d(i, o, bias=False, **kw)
    m.bn = tnn.BatchNorm2d(o, eps=0.001)
    m.forward = lambda x, m=m: torch.relu(m.bn(m.conv(x)))
    return m


class Inception(tnn.Module):
    """torchvision's GoogLeNet Inception block."""

    def __init__(self, inp, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = _basic(inp, c1, kernel_size=1)
        self.branch2 = tnn.Sequential(_basic(inp, c3r, kernel_size=1),
                                      _basic(c3r, c3, kernel_size=3, padding=1))
        self.branch3 = tnn.Sequential(_basic(inp, c5r, kernel_size=1),
                                      _basic(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                      _basic(inp, pp, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class UNet(tnn.Module):
    """Ronneberger et al. 2015 with padded convs and transposed-conv upsampling (names as
    convnet's UNet)."""

    def __init__(self, num_classes, in_channels, base, depth):
        super().__init__()

        def double(i, o):
            m = tnn.Module()
            m.block = tnn.Sequential(tnn.Conv2d(i, o, 3, padding=1, bias=False),
                                     tnn.BatchNorm2d(o), tnn.ReLU(),
                                     tnn.Conv2d(o, o, 3, padding=1, bias=False),
                                     tnn.BatchNorm2d(o), tnn.ReLU())
            m.forward = m.block.forward
            return m

        self.depth = depth
        self.inc = double(in_channels, base)
        c = base
        for i in range(depth):
            setattr(self, f"down{i + 1}", tnn.Sequential(tnn.MaxPool2d(2), double(c, 2 * c)))
            c *= 2
        for i in range(depth):
            up = tnn.Module()
            up.up = tnn.ConvTranspose2d(c, c // 2, 2, stride=2)
            up.conv = double(c, c // 2)
            setattr(self, f"up{i + 1}", up)
            c //= 2
        self.outc = tnn.Conv2d(c, num_classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for i in range(self.depth):
            skips.append(getattr(self, f"down{i + 1}")(skips[-1]))
        x = skips.pop()
        for i in range(self.depth):
            up, skip = getattr(self, f"up{i + 1}"), skips.pop()
            x = up.up(x)
            x = torch.nn.functional.pad(x, (0, skip.shape[3] - x.shape[3],
                                            0, skip.shape[2] - x.shape[2]))
            x = up.conv(torch.cat([skip, x], 1))
        return self.outc(x)
