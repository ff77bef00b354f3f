"""`mnistnet predict`: MNIST-style normalization of real-world images, and every bad input."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import ROOT, save_model, zip_of_one
from mnistnet.apps.predict import AHEAD, CHUNK_FILES, PARALLEL_FROM, answers, classify, record
from mnistnet.data.images import load_inputs, mnist_style
from mnistnet.data.preprocess import normalize
from mnistnet.nn import model
from mnistnet.nn.config import TrainConfig
from mnistnet.nn.train import train
from mnistnet.pipeline.errors import DataError


def glyph(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A font-rendered digit with random size, stroke, slant and position, MNIST-styled."""
    canvas = Image.new("L", (120, 120), 0)
    font = ImageFont.load_default(size=int(rng.integers(50, 90)))
    xy = (int(rng.integers(10, 40)), int(rng.integers(0, 20)))
    ImageDraw.Draw(canvas).text(
        xy, str(digit), fill=255, font=font, stroke_width=int(rng.integers(0, 4)), stroke_fill=255
    )
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
    return mnist_style(canvas)


@pytest.fixture(scope="module")
def digits_and_model():
    """28×28 synthetic digits (the 'test set') and a network trained on others like them."""
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 10
    images = np.stack([glyph(d, rng) for d in labels])
    cfg = TrainConfig(hidden_size=64, epochs=25, batch_size=32, optimizer="adam", lr=0.003)
    params, _ = train(cfg, normalize(images[:500]), labels[:500])
    return images[500:], labels[500:], params, cfg


def photo_like(digit28: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The digit as a user might supply it: large, black on white, off-centre, in colour."""
    side = int(rng.integers(120, 220))
    big = Image.fromarray(255 - digit28).resize((side, side), Image.BICUBIC)
    page = Image.new("L", (side + 150, side + 100), 255)
    page.paste(big, (int(rng.integers(0, 150)), int(rng.integers(0, 100))))
    return page.convert("RGB")


def test_mnist_style_centres_and_boxes_the_ink():
    canvas = Image.new("L", (300, 200), 0)
    ImageDraw.Draw(canvas).rectangle((200, 20, 239, 99), fill=255)  # 40×80 ink, far right
    out = mnist_style(canvas)
    rows, cols = np.nonzero(out > 50)
    assert rows.max() - rows.min() + 1 == 20  # longer side scaled to 20 px
    assert 9 <= cols.max() - cols.min() + 1 <= 11  # aspect ratio kept
    ys, xs = np.indices(out.shape)
    cy, cx = (ys * out).sum() / out.sum(), (xs * out).sum() / out.sum()
    assert abs(cy - 14) <= 0.6 and abs(cx - 14) <= 0.6  # centre of mass in the middle


def test_dark_on_light_is_inverted_and_transparency_is_paper():
    light = Image.new("L", (60, 60), 230)
    ImageDraw.Draw(light).line((30, 5, 30, 55), fill=20, width=5)
    rgba = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line((30, 5, 30, 55), fill=(0, 0, 0, 255), width=5)
    for image in (light, rgba):
        out = mnist_style(image)
        assert out[14, 14] > 200 and out[0, 0] == 0  # light stroke on black, like MNIST


def test_predict_agrees_on_resized_inverted_off_centre_digits(digits_and_model, tmp_path):
    images, _, params, _ = digits_and_model
    rng = np.random.default_rng(1)
    paths = []
    for i, digit in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        photo_like(digit, rng).save(paths[-1])
    original = model.predict(params, normalize(images))
    from_files = np.array([classify(params, load_inputs(p))[0]["digit"] for p in paths])
    agreement = np.mean(from_files == original)
    assert agreement >= 0.95, f"agreement {agreement:.1%}"


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **kwargs.pop("env", {})}
    command = [sys.executable, "-m", "mnistnet.apps.cli", "predict", *args]
    kwargs = {"capture_output": True, "text": True, "timeout": 120, **kwargs}
    return subprocess.run(command, env=env, **kwargs)


def test_cli_json_schema_batches_and_bad_files(digits_and_model, tmp_path):
    images, _, params, cfg = digits_and_model
    save_model(tmp_path / "model.npz", params, cfg)
    rng = np.random.default_rng(2)
    photo_like(images[0], rng).save(tmp_path / "digit.jpg")
    np.save(tmp_path / "batch.npy", images[:3])
    np.savez(tmp_path / "batch.npz", x=images[:2].astype(np.float32) / 255)
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    (tmp_path / "text.png").write_text("not an image")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 10, 10), np.uint8))
    files = [
        "digit.jpg",
        "batch.npy",
        "batch.npz",
        "blank.png",
        "text.png",
        "gone.png",
        "wrong.npy",
    ]

    result = run_cli(
        "--json", "--model", str(tmp_path / "model.npz"), *(str(tmp_path / f) for f in files)
    )
    assert result.returncode == 1  # some files failed
    records = [json.loads(line) for line in result.stdout.splitlines()]
    good = [r for r in records if "digit" in r]
    assert len(good) == 1 + 3 + 2
    for r in good:
        assert set(r) == {"file", "index", "digit", "probability", "top"}
        assert [t["digit"] for t in r["top"]][0] == r["digit"] and len(r["top"]) == 3
        assert r["top"][0]["probability"] >= r["top"][1]["probability"] >= 0
    assert [r["index"] for r in good if r["file"].endswith("batch.npy")] == [0, 1, 2]
    errors = {os.path.basename(r["file"]): r["error"] for r in records if "error" in r}
    assert "no ink" in errors["blank.png"]
    assert "not a PNG, JPEG, .npy or .npz file (it starts b'not an i')" == errors["text.png"]
    assert errors["gone.png"] == "no such file"
    assert "shape (3, 10, 10)" in errors["wrong.npy"]
    assert result.stderr.count("error:") == 4

    plain = run_cli("--model", str(tmp_path / "model.npz"), str(tmp_path / "digit.jpg"))
    assert plain.returncode == 0
    assert plain.stdout.startswith(f"{tmp_path / 'digit.jpg'}: ") and "top 3:" in plain.stdout


def test_many_files_are_read_in_parallel_and_reported_in_order(digits_and_model, tmp_path):
    images, _, params, cfg = digits_and_model
    save_model(tmp_path / "model.npz", params, cfg)
    expected = model.predict(params, normalize(images[:2]))
    Image.fromarray(images[0]).save(tmp_path / "a.png")
    Image.fromarray(images[1]).save(tmp_path / "b.png")
    files = [str(tmp_path / ("a.png" if i % 2 else "b.png")) for i in range(80)]
    files[41] = str(tmp_path / "missing.png")  # more than PARALLEL_FROM files, one bad
    result = run_cli("--json", "--model", str(tmp_path / "model.npz"), *files)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == files
    assert records[41] == {"file": files[41], "error": "no such file"}
    digits = [r["digit"] for i, r in enumerate(records) if i != 41]
    assert digits == [expected[0] if i % 2 else expected[1] for i in range(80) if i != 41]


def test_cli_model_errors(tmp_path, digits_and_model):
    images = digits_and_model[0]
    np.save(tmp_path / "x.npy", images[:1])
    missing = run_cli("--model", str(tmp_path / "none.npz"), str(tmp_path / "x.npy"))
    assert missing.returncode == 1 and "error: model:" in missing.stderr
    assert "file not found" in missing.stderr
    wrong = model.init_params(np.random.default_rng(0), 100, 8, 10)
    save_model(tmp_path / "wrong.npz", wrong, TrainConfig())
    shapes = run_cli("--model", str(tmp_path / "wrong.npz"), str(tmp_path / "x.npy"))
    assert shapes.returncode == 1 and "do not form a 784-h-k network" in shapes.stderr


@pytest.mark.slow
def test_real_mnist_digits_as_photos_agree_with_the_trained_model(tmp_path):
    """On the pipeline's own model and test set (run `make run` first)."""
    test_split, model_file = ROOT / "data/processed/test.npz", ROOT / "data/model/model.npz"
    if not (test_split.exists() and model_file.exists()):
        pytest.skip("needs data/processed/test.npz and data/model/model.npz: run `make run`")
    from conftest import load_model

    params, _ = load_model(model_file)
    with np.load(test_split) as f:
        digits = (f["x"][:500].reshape(-1, 28, 28) * 255).round().astype(np.uint8)
    rng = np.random.default_rng(3)
    original = model.predict(params, normalize(digits))
    from_photos = []
    for i, digit in enumerate(digits):
        path = tmp_path / f"{i}.png"
        photo_like(digit, rng).save(path)
        from_photos.append(classify(params, load_inputs(path))[0]["digit"])
    agreement = np.mean(np.array(from_photos) == original)
    assert agreement >= 0.95, f"agreement {agreement:.1%}"


# --- files as people and attackers have them ------------------------------------------------


def saved(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return load_inputs(path)


@pytest.fixture(scope="module")
def page(digits_and_model):
    """A digit as a scan: dark ink on light paper, 150 px, gray."""
    digit = digits_and_model[0][3]
    return Image.fromarray(255 - digit).resize((150, 150), Image.BICUBIC)


def test_16_bit_pngs_read_as_their_8_bit_selves(page, tmp_path):
    eight = np.asarray(page).astype(np.uint16)
    reference = saved(page, tmp_path / "8.png")
    sixteen = Image.fromarray(eight * 257)  # mode I;16: the same picture in 16 bits
    assert np.array_equal(saved(sixteen, tmp_path / "16.png"), reference)
    grey = Image.fromarray((20_000 + eight * 118).astype(np.uint16))  # mid-grey: 78 to 195
    grey8 = Image.fromarray(np.rint(np.asarray(grey) / 257).astype(np.uint8))
    assert np.array_equal(
        saved(grey, tmp_path / "grey16.png"), saved(grey8, tmp_path / "grey8.png")
    )


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_photo_is_turned_upright_by_its_exif_orientation(page, tmp_path, orientation):
    """Phones store a portrait sideways and say so in the EXIF Orientation tag."""
    upright = saved(page.convert("RGB"), tmp_path / "upright.jpg", quality=95)
    stored = page.convert("RGB").rotate({3: 180, 6: 90, 8: 270}[orientation], expand=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    turned = saved(stored, tmp_path / "turned.jpg", quality=95, exif=exif)
    assert np.abs(turned - upright).max() < 0.1  # JPEG blocks differ a little, the digit not


def test_palette_cmyk_and_transparent_images_read_as_a_person_sees_them(page, tmp_path):
    reference = saved(page, tmp_path / "gray.png")
    ink = 255 - np.asarray(page)
    transparent = np.zeros((*ink.shape, 4), np.uint8)  # black ink on transparent black
    transparent[..., 3] = ink
    variants = {
        "palette.png": page.convert("P"),
        "cmyk.jpg": page.convert("CMYK"),
        "transparent.png": Image.fromarray(transparent, "RGBA"),
        "la.png": Image.fromarray(np.stack([np.zeros_like(ink), ink], -1), "LA"),
    }
    for name, image in variants.items():
        extra = {"quality": 98} if name.endswith("jpg") else {}
        assert np.abs(saved(image, tmp_path / name, **extra) - reference).max() < 0.08, name


def png_with_chunk(kind: bytes, data: bytes) -> bytes:
    """A valid PNG of a stroke with one more chunk before its image data."""
    buffer = io.BytesIO()
    canvas = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(canvas).line([(20, 5), (20, 35)], fill=0, width=4)
    canvas.save(buffer, format="PNG")
    png = buffer.getvalue()
    at = png.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return png[:at] + chunk + png[at:]


def hostile_files(folder) -> dict[str, str]:
    """One file of each kind `predict` must survive: name → what its error line says."""
    (folder / "text-bomb.png").write_bytes(  # 20 MB of text in a 20 KB chunk
        png_with_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * 20_000_000, 9))
    )
    good = png_with_chunk(b"tEXt", b"Comment\0fine")
    broken = bytearray(good)
    broken[good.index(b"IDAT") + 20] ^= 0xFF  # a bit flipped in the compressed pixels
    (folder / "corrupt.png").write_bytes(bytes(broken))
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (60000, 60000), }"
    npy = b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header.encode() + b"\n"
    (folder / "huge-header.npy").write_bytes(npy + b"\0" * 100)  # claims 29 GB
    with open(folder / "a-gigabyte.png", "wb") as f:  # sparse: nothing is written
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(2**30)
    with open(folder / "zeros.png", "wb") as f:
        f.truncate(2**30)
    (folder / "empty-folder").mkdir()
    (folder / "bomb.npz").write_bytes(zip_of_one(b"x.npy", os.urandom(100_000), 8, 0, 100_000_128))
    return {
        "text-bomb.png": "not a readable PNG or JPEG (ValueError: Decompressed data too large",
        "corrupt.png": "not a readable PNG or JPEG",
        "huge-header.npy": "header claims 28800000000 bytes of data, it holds 100",
        "a-gigabyte.png": "1,073,741,824 bytes; at most 67,108,864 are read",
        "zeros.png": "not a PNG, JPEG, .npy or .npz file (it starts b'\\x00\\x00",
        "empty-folder": "a folder with no PNG, JPEG, .npy or .npz file in it",
        "missing.png": "no such file",
        "bomb.npz": "its arrays ['x'] expand to 100,000,128 bytes; at most 67,108,864 are read",
    }


def test_each_hostile_file_is_one_data_error(tmp_path):
    for name, says in hostile_files(tmp_path).items():
        with pytest.raises(DataError) as refused:
            load_inputs(tmp_path / name)
        assert says in str(refused.value), name


def test_an_unreadable_file_is_one_data_error(tmp_path, monkeypatch):
    """(As root, permissions do not stop a read: the refusal is staged.)"""
    (tmp_path / "locked.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("mnistnet.data.untrusted.open", refuse, raising=False)
    with pytest.raises(DataError, match=r"cannot read it \(Permission denied\)"):
        load_inputs(tmp_path / "locked.png")


def test_an_image_gets_the_same_answer_however_it_is_batched(digits_and_model):
    images, _, params, _ = digits_and_model
    x = normalize(images)
    alone = [classify(params, x[i : i + 1])[0] for i in range(len(x))]
    assert classify(params, x) == alone
    assert classify(params, x[::-1]) == alone[::-1]


@pytest.mark.cli
def test_predict_answers_every_good_file_and_one_line_per_bad_one(digits_and_model, tmp_path):
    images, _, params, cfg = digits_and_model
    save_model(tmp_path / "model.npz", params, cfg)
    good = []
    for i, digit in enumerate(images[:40]):
        good.append(tmp_path / f"good-{i:02d}.png")  # as many as the parallel loader takes
        Image.fromarray(digit).save(good[-1])
    bad = hostile_files(tmp_path)
    files = [*map(str, good), *(str(tmp_path / name) for name in bad)]
    result = run_cli("--model", str(tmp_path / "model.npz"), *files, *map(str, good))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 2 * len(good)  # every good file answered
    errors = result.stderr.splitlines()
    assert len(errors) == len(bad) and "Traceback" not in result.stderr
    for line, (name, says) in zip(errors, bad.items(), strict=True):
        assert line.startswith(f"error: {tmp_path / name}: ") and says in line


@pytest.mark.cli
def test_a_fifo_socket_device_or_pipe_is_refused_unread_and_never_waited_on(
    digits_and_model, tmp_path
):
    """Only regular files are read: a FIFO nothing writes to would block the command, a pipe
    or a device could stream without end."""
    images, _, params, cfg = digits_and_model
    save_model(tmp_path / "model.npz", params, cfg)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(images[0]).save(folder / "a.png")
    os.mkfifo(folder / "b.png")  # no writer, ever
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "c.png"))
    Image.fromarray(images[1]).save(folder / "d.png")
    model_file = str(tmp_path / "model.npz")
    result = run_cli(
        "--model",
        model_file,
        str(folder),
        os.devnull,
        "/dev/stdin",
        input=b"\x89PNG\r\n\x1a\n" + bytes(2**20),
        text=False,
        timeout=60,
    )
    assert result.returncode == 1
    answered = [line.split(b":")[0] for line in result.stdout.splitlines()]
    assert answered == [str(folder / "a.png").encode(), str(folder / "d.png").encode()]
    assert result.stderr.decode().splitlines() == [
        f"error: {folder / 'b.png'}: a FIFO or pipe, not a regular file; only regular files "
        f"are read.",
        f"error: {folder / 'c.png'}: a socket, not a regular file; only regular files are read.",
        f"error: {os.devnull}: a character device, not a regular file; only regular files are "
        f"read.",
        "error: /dev/stdin: a FIFO or pipe, not a regular file; only regular files are read.",
    ]
    fifo_model = run_cli("--model", str(folder / "b.png"), str(folder / "a.png"), timeout=60)
    assert fifo_model.returncode == 1 and "Traceback" not in fifo_model.stderr
    assert f"error: model: {folder / 'b.png'}: a FIFO or pipe, not a regular" in fifo_model.stderr


@pytest.mark.cli
def test_any_file_name_gives_one_parseable_line_and_a_full_disk_one_error(
    digits_and_model, tmp_path
):
    """A newline in a name cannot forge a line, a name that is not UTF-8 cannot stop the
    command (under a strict UTF-8 stdout), and stdout on a full disk is one error line."""
    images, _, params, cfg = digits_and_model
    model_file = str(tmp_path / "model.npz")
    save_model(model_file, params, cfg)
    folder = tmp_path / "in"
    folder.mkdir()
    names = [b"a\nb.png: 7 (100.0%)  top 3: 7 100.0%.png", b"latin-1 \xe9.png", b"z.png"]
    for i, name in enumerate(names):
        Image.fromarray(images[i]).save(os.path.join(bytes(folder), name), format="PNG")
    (folder / "x\nerror: forged.png").write_text("not an image")
    strict = {"PYTHONIOENCODING": "utf-8"}  # a UTF-8 terminal: a stray byte cannot be printed

    plain = run_cli("--model", model_file, str(folder), env=strict)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    answer = re.compile(r"(.*): \d \(\d+\.\d%\)  top 3: \d \S+%, \d \S+%, \d \S+%")
    shown = [answer.fullmatch(line)[1] for line in plain.stdout.splitlines()]
    assert shown == [
        f"{folder}/a\\nb.png: 7 (100.0%)  top 3: 7 100.0%.png",
        f"{folder}/latin-1 \\xe9.png",
        f"{folder}/z.png",
    ]
    assert plain.stderr.splitlines() == [
        f"error: {folder}/x\\nerror: forged.png: not a PNG, JPEG, .npy or .npz file "
        f"(it starts b'not an i')"
    ]
    as_json = run_cli("--json", "--model", model_file, str(folder), env=strict)
    files = [os.fsencode(json.loads(line)["file"]) for line in as_json.stdout.splitlines()]
    assert files == [
        os.path.join(bytes(folder), name)
        for name in [*names[:2], b"x\nerror: forged.png", names[2]]
    ]

    with open("/dev/full", "w") as full:
        result = run_cli(
            "--model",
            model_file,
            str(folder / "z.png"),
            stdout=full,
            capture_output=False,
            stderr=subprocess.PIPE,
        )
    assert result.returncode == 1
    assert result.stderr == (
        "error: standard output: could not write it (No space left on device). "
        "Free some disk space and rerun.\n"
    )


def test_answers_stream_in_order_reading_only_a_bounded_window_ahead(digits_and_model, tmp_path):
    """A long list of files is answered chunk by chunk as it is read: the first answers come
    after a bounded number of paths was taken from the walk, not after all of them (the
    folder walk is a generator), and every answer is the one its file gets alone."""
    images, _, params, _ = digits_and_model
    for i in range(2):
        Image.fromarray(images[i]).save(tmp_path / f"{i}.png")
    expected = [classify(params, load_inputs(tmp_path / f"{i}.png"))[0] for i in range(2)]
    n = 600
    taken = []

    def paths():
        for i in range(n):
            taken.append(i)
            yield str(tmp_path / ("missing.png" if i == 7 else f"{i % 2}.png"))

    workers = os.cpu_count() or 1
    window = PARALLEL_FROM + (AHEAD * workers + 1) * CHUNK_FILES
    out = []
    for chunk in answers(params, paths()):
        if not out:
            assert len(taken) <= min(window, n - 1), len(taken)  # nothing waits for the end
        out += chunk
    assert [path for path, _ in out] == list(paths())[: len(out)] and len(out) == n
    assert out[7][1] == "no such file"
    got = [record(a[0][0], a[1][0]) for i, (_, a) in enumerate(out) if i != 7]
    assert got == [expected[i % 2] for i in range(n) if i != 7]


@pytest.mark.cli
def test_a_closed_pipe_ends_predict_quietly(tmp_path):
    """`mnistnet predict many.npy | head -1`: the reader leaves after one line."""
    params = model.init_params(np.random.default_rng(0), 784, 8, 10)
    save_model(tmp_path / "model.npz", params, TrainConfig(hidden_size=8))
    images = np.random.default_rng(1).integers(0, 256, (3000, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "many.npy", images)  # 3,000 lines: more than a pipe buffers
    command = [
        sys.executable,
        "-m",
        "mnistnet.apps.cli",
        "predict",
        "--model",
        str(tmp_path / "model.npz"),
        str(tmp_path / "many.npy"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` does after its line
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141  # 128 + SIGPIPE, as a shell reports it
    assert first.startswith(str(tmp_path / "many.npy").encode() + b"[0]: ")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
