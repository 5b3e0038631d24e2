"""Writers for a predicted mask: NIfTI (the scan's affine), DICOM SEG (highdicom), overlay PNG.

Every file is written to a temporary name and renamed into place (:mod:`lightseg.fileio`).
Masks are uint8 (z, y, x) label maps on the scan's own grid (0 = background).
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import numpy as np

from lightseg.data.preprocessing import Preprocessing
from lightseg.data.volumes import Scan
from lightseg.errors import LightsegError
from lightseg.fileio import atomic_write_bytes

RED = np.array([1.0, 0.15, 0.15], np.float32)


def write_nifti_mask(path: str | Path, mask: np.ndarray, scan: Scan) -> Path:
    """uint8 NIfTI label volume with the scan's affine (a NIfTI input's header is kept)."""
    import nibabel as nib

    data = np.ascontiguousarray(np.asarray(mask, np.uint8).transpose(2, 1, 0))  # -> (i, j, k)
    if isinstance(scan.nifti_header, nib.Nifti1Header):
        hdr = scan.nifti_header.copy()
        hdr.set_data_dtype(np.uint8)
        img = nib.Nifti1Image(data, hdr.get_best_affine(), hdr)  # qform and sform unchanged
    else:
        img = nib.Nifti1Image(data, scan.affine)
        img.header.set_qform(scan.affine, code=1)
        img.header.set_sform(scan.affine, code=1)
        img.header.set_xyzt_units("mm")
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_intent("label")
    img.header["descrip"] = b"lightseg mask"
    raw = img.to_bytes()
    return atomic_write_bytes(path, gzip.compress(raw, 6) if str(path).endswith(".gz") else raw)


def write_dicom_seg(
    path: str | Path,
    mask: np.ndarray,
    scan: Scan,
    classes: list[str],
    algorithm: str,
    version: str,
) -> Path:
    """A binary DICOM SEG of ``mask`` referencing the scan's source instances (one segment per
    foreground class); its frames keep the source planes."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    if scan.kind != "dicom" or not scan.files:
        raise LightsegError("a DICOM SEG needs a DICOM input")
    mask = np.asarray(mask, np.uint8)
    if scan.frames:  # multi-frame source: frames in the file's order
        source = [pydicom.dcmread(scan.files[0], stop_before_pixels=True)]
        labels = np.zeros_like(mask)
        labels[np.asarray(scan.frames) - 1] = mask
    else:  # single-frame files, in the volume's (sorted) order
        source = [pydicom.dcmread(f, stop_before_pixels=True) for f in scan.files]
        labels = mask
    algo = hd.AlgorithmIdentificationSequence(
        name=algorithm, version=version, family=codes.DCM.ArtificialIntelligence
    )
    segments = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=name[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
        )
        for k, name in enumerate(classes)
        if k > 0
    ]
    with warnings.catch_warnings():  # source names like "CQ500-CT-310" are not our concern
        warnings.filterwarnings("ignore", "The string .* unlikely to represent", UserWarning)
        try:
            seg = hd.seg.Segmentation(
                source_images=source,
                pixel_array=labels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=segments,
                series_instance_uid=hd.UID(),
                series_number=9901,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="lightseg",
                manufacturer_model_name=algorithm[:64],
                software_versions=version,
                device_serial_number="0",
                series_description=f"lightseg {algorithm}"[:64],
                omit_empty_frames=bool(labels.any()),
            )
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise LightsegError(f"DICOM SEG not possible for {scan.source}: {e}") from None
    buf = io.BytesIO()
    seg.save_as(buf)
    return atomic_write_bytes(path, buf.getvalue())


def overlay_slice(hu: np.ndarray, mask: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 RGB of a windowed HU slice with the mask filled translucent red and outlined red."""
    from scipy.ndimage import binary_erosion

    rgb = np.repeat(pre.window(hu)[..., None], 3, axis=-1)
    m = np.asarray(mask) > 0
    if m.any():
        rgb[m] = 0.6 * rgb[m] + 0.4 * RED
        rgb[m & ~binary_erosion(m)] = RED
    return (rgb * 255 + 0.5).astype(np.uint8)


def overlay_slices(mask: np.ndarray, most: int = 12) -> list[int]:
    """Slices to show: up to ``most`` evenly spread lesion slices, else evenly spaced ones."""
    lesion = np.flatnonzero(np.asarray(mask).reshape(len(mask), -1).any(1))
    pool = lesion if lesion.size else np.arange(len(mask))
    k = min(most if lesion.size else 4, pool.size)
    return sorted({int(pool[i]) for i in np.linspace(0, pool.size - 1, k).round().astype(int)})


def overlay_montage(
    scan: Scan, mask: np.ndarray, pre: Preprocessing, tile: int = 256, cols: int = 4
) -> np.ndarray:
    """Montage (uint8 RGB) of :func:`overlay_slices`: each slice scaled to fit a ``tile``
    square, labelled with its index and lesion pixels."""
    from PIL import Image, ImageDraw

    zs = overlay_slices(mask)
    h, w = scan.hu.shape[1:]
    size = (max(1, round(w * tile / max(h, w))), max(1, round(h * tile / max(h, w))))
    ncols = min(cols, len(zs))
    out = Image.new("RGB", (ncols * tile, -(-len(zs) // ncols) * tile))
    draw = ImageDraw.Draw(out)
    for n, z in enumerate(zs):
        im = Image.fromarray(overlay_slice(scan.hu[z], mask[z], pre))
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        r, c = divmod(n, ncols)
        out.paste(im, (c * tile + (tile - size[0]) // 2, r * tile + (tile - size[1]) // 2))
        label = f"slice {z}: {int((mask[z] > 0).sum())} px"
        x0, y0, x1, y1 = draw.textbbox((c * tile + 3, r * tile + 2), label)
        draw.rectangle((x0 - 2, y0 - 1, x1 + 2, y1 + 1), fill=(0, 0, 0))
        draw.text((c * tile + 3, r * tile + 2), label, fill=(255, 255, 0))
    return np.asarray(out)


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """An image (uint8 grey or RGB) as PNG, written atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img)).save(buf, format="PNG", optimize=True)
    return atomic_write_bytes(path, buf.getvalue())
