"""Writes the DICOM variants the conformance test adds to pydicom's own test files, into the folder given as argv[1]:
a 12-bit and an 8-bit chest X-ray (from ../shared/data/samples/dicom) re-encoded by dcmtk (JPEG baseline, extended
12-bit, lossless SV1 and process 14, JPEG-LS lossless and near-lossless, RLE, big endian, deflated) and by GDCM
(JPEG 2000 lossless and lossy), plus pydicom-written cases: a VOI LUT Sequence, PALETTE COLOR, YBR_FULL colour,
signed 16-bit with rescale, and an implicit-VR body under an explicit transfer syntax. Prints one path per line.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.pixel_data_handlers import util
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

warnings.simplefilter("ignore")
out = sys.argv[1]
samples = sys.argv[2]
tests = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
written = []


def save(ds, name, implicit=False):
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.is_little_endian = True
    ds.is_implicit_VR = implicit
    path = os.path.join(out, name)
    ds.save_as(path, write_like_original=implicit)
    written.append(path)
    return path


def base(pixels, bits_stored, photometric="MONOCHROME2", signed=False):
    ds = pydicom.dataset.FileDataset(None, {}, preamble=b"\0" * 128)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1 if pixels.ndim == 2 else 3
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if pixels.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.tobytes()
    return ds


def dcmtk(tool, flags, src, name):
    path = os.path.join(out, name)
    subprocess.run([tool, *flags, src, path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    written.append(path)


def gdcm_j2k(src, name, lossless):
    import gdcm
    reader = gdcm.ImageReader()
    reader.SetFileName(src)
    if not reader.Read():
        return
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEG2000Lossless if lossless else gdcm.TransferSyntax.JPEG2000))
    change.SetInput(reader.GetImage())
    if not change.Change():
        return
    writer = gdcm.ImageWriter()
    writer.SetFileName(os.path.join(out, name))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if writer.Write():
        written.append(os.path.join(out, name))


# a 12-bit chest X-ray (the 1993 CR, stretched to 12 bits) and an 8-bit one (an NIH secondary capture, cropped)
cr = pydicom.dcmread(os.path.join(samples, "cr-mono1-10bit-no-preamble.dcm"), force=True)
cr.file_meta = FileMetaDataset()
cr.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
cr_pixels = cr.pixel_array.astype(np.uint32)
grey12 = ((cr_pixels - cr_pixels.min()) * 4095 // max(1, int(cr_pixels.max() - cr_pixels.min()))).astype(np.uint16)
base12 = save(base(grey12, 12), "cr-12bit-explicit-le.dcm")
grey8 = pydicom.dcmread(os.path.join(samples, "nih-secondary-capture-test1.dcm")).pixel_array[256:768, 256:768].copy()
base8 = save(base(grey8, 8), "nih-8bit-explicit-le.dcm")

for src, tag in ((base12, "cr12"), (base8, "nih8")):
    dcmtk("dcmcjpeg", ["+e1"], src, f"{tag}-jpeg-lossless-sv1.dcm")
    dcmtk("dcmcjpeg", ["+el"], src, f"{tag}-jpeg-lossless-p14.dcm")
    dcmtk("dcmcjpeg", ["+ee"], src, f"{tag}-jpeg-extended.dcm")
    dcmtk("dcmcjpls", ["+el"], src, f"{tag}-jpegls-lossless.dcm")
    dcmtk("dcmcjpls", ["+en"], src, f"{tag}-jpegls-near-lossless.dcm")
    dcmtk("dcmcrle", [], src, f"{tag}-rle.dcm")
    dcmtk("dcmconv", ["+tb"], src, f"{tag}-explicit-big-endian.dcm")
    dcmtk("dcmconv", ["+td"], src, f"{tag}-deflated.dcm")
    gdcm_j2k(src, f"{tag}-j2k-lossless.dcm", True)
    gdcm_j2k(src, f"{tag}-j2k-lossy.dcm", False)
dcmtk("dcmcjpeg", ["+eb"], base8, "nih8-jpeg-baseline.dcm")

# VOI LUT Sequence: a 12-bit-in, 16-bit-out sigmoid LUT, no window
voi = pydicom.dcmread(base12)
lut = pydicom.Dataset()
entries = 4096
lut.LUTDescriptor = [entries, 0, 16]
x = np.arange(entries)
lut.LUTData = (65535 / (1 + np.exp(-(x - 2000) / 400))).astype(np.uint16).tolist()
lut["LUTData"].VR = "US"
voi.VOILUTSequence = [lut]
voi.SOPInstanceUID = generate_uid()
save(voi, "cr12-voi-lut-sequence.dcm")

# signed 16-bit with a rescale and a window (CT-like values)
signed = (grey12.astype(np.int32) - 2048).astype(np.int16)
ct = base(signed, 16, signed=True)
ct.RescaleSlope, ct.RescaleIntercept = "0.5", "-100"
ct.WindowCenter, ct.WindowWidth = "-200", "1500"
save(ct, "cr16-signed-rescale-window.dcm")

# PALETTE COLOR: 8-bit indices through 16-bit red, green and blue LUTs
pal = base(grey8, 8, "PALETTE COLOR")
ramp = np.arange(256)
for colour, values in (("Red", ramp * 257), ("Green", (255 - ramp) * 257), ("Blue", (ramp * 3 % 256) * 257)):
    setattr(pal, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
    setattr(pal, f"{colour}PaletteColorLookupTableData", values.astype("<u2").tobytes())
save(pal, "nih8-palette-color.dcm")

# YBR_FULL colour, uncompressed
rgb = np.stack([grey8, np.roll(grey8, 40, axis=1), 255 - grey8], axis=-1).astype(np.uint8)
save(base(util.convert_color_space(rgb, "RGB", "YBR_FULL"), 8, "YBR_FULL"), "nih8-ybr-full.dcm")

# an implicit VR body under a meta group that says explicit VR little endian (a real writer bug)
save(base(grey12, 12), "cr12-implicit-body-explicit-syntax.dcm", implicit=True)

print("\n".join(written))
