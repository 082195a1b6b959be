"""Reference decoder for the DICOM conformance test (test/dicom-conformance.test.ts): pydicom + GDCM.

For each file given on stdin (one path per line) writes one JSON line to stdout and, when pydicom decodes the first
frame as a grey or colour image, the 8-bit picture the project's decoder is specified to produce to
<out>/<n>.u8: modality LUT, then the VOI LUT sequence, else the first linear window, else a 0.5-99.5 percentile
window over a strided sample; colour as luminance (0.299 R + 0.587 G + 0.114 B); MONOCHROME1 inverted.
Python is only the oracle here: the product's decoder is TypeScript.
"""
import json
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers import util

warnings.simplefilter("ignore")
pydicom.config.pixel_data_handlers = [h for h in pydicom.config.pixel_data_handlers
                                      if h.__name__.split(".")[-1] in ("numpy_handler", "rle_handler", "gdcm_handler")]

LOSSLESS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.90"}


def js_round(x):
    return np.floor(x + 0.5)


def window(values, center, width):
    w = max(width, 1.0)
    lo = center - 0.5 - (w - 1) / 2
    hi = center - 0.5 + (w - 1) / 2
    y = ((values - (center - 0.5)) / ((w - 1) or 1) + 0.5) * 255
    y = np.where(values <= lo, 0, np.where(values > hi, 255, y))
    return js_round(np.clip(y, 0, 255))


def percentile_window(values):
    flat = values.astype(np.float32).ravel()
    step = max(1, len(flat) // 200000)
    sample = np.sort(flat[::step])
    pick = lambda q: float(sample[int(min(len(sample) - 1, max(0, js_round(q * (len(sample) - 1)))))])
    lo, hi = pick(0.005), pick(0.995)
    width = max(hi - lo, 1) + 1
    return window(flat.reshape(values.shape).astype(np.float64), lo + 0.5 + (width - 1) / 2, width)


def jpeg_is_ycbcr(frame, photometric):
    """How libjpeg reads 3 components: JFIF -> YCbCr; Adobe APP14 -> its transform flag; ids R,G,B -> RGB; else
    the DICOM photometric interpretation (GDCM returns the components as coded, without converting)."""
    p = 2
    jfif = adobe = rgb_ids = None
    while p + 4 < len(frame) and frame[p] == 0xFF:
        marker = frame[p + 1]
        if marker == 0xDA:
            break
        length = (frame[p + 2] << 8) | frame[p + 3]
        if marker == 0xE0 and frame[p + 4:p + 8] == b"JFIF":
            jfif = True
        if marker == 0xEE and frame[p + 4:p + 9] == b"Adobe":
            adobe = frame[p + 15]
        if marker in (0xC0, 0xC1):
            rgb_ids = frame[p + 10] == 0x52 and frame[p + 13] == 0x47 and frame[p + 16] == 0x42
        p += 2 + length
    if adobe is not None:
        return adobe != 0
    if jfif:
        return True
    if rgb_ids:
        return False
    return not photometric == "RGB"


def to_8bit(ds, arr):
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if spp == 3:
        syntax = ds.file_meta.TransferSyntaxUID
        if photometric.startswith("YBR_FULL") and syntax in (
                "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5"):
            arr = util.convert_color_space(arr, photometric, "RGB")
        if syntax in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
            frame = next(pydicom.encaps.generate_pixel_data_frame(ds.PixelData, frames))
            if jpeg_is_ycbcr(frame, photometric):
                arr = util.convert_color_space(arr, "YBR_FULL", "RGB")
        arr = arr.astype(np.float64)
        grey = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
        values = grey.astype(np.float32).astype(np.float64)
    elif photometric == "PALETTE COLOR":
        rgb = util.apply_color_lut(arr, ds).astype(np.float64)
        values = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32).astype(np.float64)
    else:
        values = util.apply_modality_lut(arr, ds).astype(np.float64)
    if spp == 1 and photometric != "PALETTE COLOR" and "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        out = util.apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
        img = js_round(np.clip(out / ((1 << bits) - 1) * 255, 0, 255))
    elif spp == 1 and photometric != "PALETTE COLOR" and "WindowCenter" in ds and "WindowWidth" in ds and \
            float(np.ravel(ds.WindowWidth)[0]) > 0:
        img = window(values, float(np.ravel(ds.WindowCenter)[0]), float(np.ravel(ds.WindowWidth)[0]))
    else:
        img = percentile_window(values)
    if photometric == "MONOCHROME1":
        img = 255 - img
    return img.astype(np.uint8)


def main():
    out_dir = sys.argv[1]
    for n, line in enumerate(sys.stdin):
        path = line.strip()
        if not path:
            continue
        rec = {"file": path}
        try:
            ds = pydicom.dcmread(path, force=True)
            if "TransferSyntaxUID" not in ds.file_meta:  # ACR-NEMA, or a meta group without it: as read
                ds.file_meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR
                                                  else pydicom.uid.ExplicitVRLittleEndian)
            rec["syntax"] = str(ds.file_meta.TransferSyntaxUID) if "TransferSyntaxUID" in ds.file_meta else None
            rec["photometric"] = str(getattr(ds, "PhotometricInterpretation", ""))
            rec["samples"] = int(getattr(ds, "SamplesPerPixel", 1))
            rec["bitsAllocated"] = int(getattr(ds, "BitsAllocated", 0))
            if "PixelData" not in ds:
                rec["status"] = "no-pixels"
            else:
                img = to_8bit(ds, ds.pixel_array)
                if img.ndim != 2:
                    raise ValueError(f"unexpected shape {img.shape}")
                rec["status"] = "ok"
                rec["width"], rec["height"] = int(img.shape[1]), int(img.shape[0])
                rec["lossless"] = rec["syntax"] in LOSSLESS
                rec["out"] = f"{out_dir}/{n}.u8"
                img.tofile(rec["out"])
        except Exception as err:  # the oracle's refusal is data for the test, not a failure
            rec["status"] = "error"
            rec["error"] = f"{type(err).__name__}: {str(err)[:200]}"
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
