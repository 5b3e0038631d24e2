"""milesial/Pytorch-UNet checkpoints import with identical outputs.

The reference network is written here from milesial's published structure (unet_parts.py /
unet_model.py), independently of lightseg's implementation.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightseg.checkpoint import load_checkpoint
from lightseg.cli import main
from lightseg.milesial import import_milesial


class MDoubleConv(nn.Module):
    def __init__(self, i, o, mid=None, bias=True):
        super().__init__()
        mid = mid or o
        self.double_conv = nn.Sequential(
            nn.Conv2d(i, mid, 3, padding=1, bias=bias), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, o, 3, padding=1, bias=bias), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x):
        return self.double_conv(x)


class MDown(nn.Module):
    def __init__(self, i, o, bias):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), MDoubleConv(i, o, bias=bias))

    def forward(self, x):
        return self.maxpool_conv(x)


class MUp(nn.Module):
    def __init__(self, i, o, bilinear, bias):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = MDoubleConv(i, o, i // 2, bias=bias)
        else:
            self.up = nn.ConvTranspose2d(i, i // 2, kernel_size=2, stride=2)
            self.conv = MDoubleConv(i, o, bias=bias)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class MilesialUNet(nn.Module):
    def __init__(self, n_channels, n_classes, bilinear=False, bias=True, w=64):
        super().__init__()
        f = 2 if bilinear else 1
        self.inc = MDoubleConv(n_channels, w, bias=bias)
        self.down1, self.down2 = MDown(w, 2 * w, bias), MDown(2 * w, 4 * w, bias)
        self.down3, self.down4 = MDown(4 * w, 8 * w, bias), MDown(8 * w, 16 * w // f, bias)
        self.up1 = MUp(16 * w, 8 * w // f, bilinear, bias)
        self.up2 = MUp(8 * w, 4 * w // f, bilinear, bias)
        self.up3 = MUp(4 * w, 2 * w // f, bilinear, bias)
        self.up4 = MUp(2 * w, w, bilinear, bias)
        self.outc = nn.Module()
        self.outc.conv = nn.Conv2d(w, n_classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc.conv(x)


def test_full_size_param_count_matches_reference():
    assert sum(p.numel() for p in MilesialUNet(3, 2).parameters()) == 31_043_586
    assert sum(p.numel() for p in MilesialUNet(3, 2, bias=False).parameters()) == 31_037_698


@pytest.mark.parametrize(
    ("n_classes", "bias", "bilinear", "mask_values"),
    [(2, True, False, True), (1, False, False, False), (2, True, True, False)],
)
def test_import_gives_identical_outputs(tmp_path, n_classes, bias, bilinear, mask_values):
    torch.manual_seed(1)
    ref = MilesialUNet(3, n_classes, bilinear=bilinear, bias=bias, w=4)
    # non-trivial BN statistics so a mis-mapped key changes outputs
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ref.eval()
    state = ref.state_dict()
    if mask_values:
        state["mask_values"] = [0, 1]
    torch.save(state, tmp_path / "m.pth")
    out = import_milesial(tmp_path / "m.pth", tmp_path / "ck")
    ck = load_checkpoint(out)
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), ref(x), rtol=0, atol=0)
    assert ck.model.config.bias == bias and ck.model.config.n_classes == n_classes


def test_import_cli_bad_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    assert main(["import-checkpoint", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
