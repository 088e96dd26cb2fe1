"""The web app's work without a browser: :class:`mira.app.AppRunner` on a tiny saved model (CPU, seconds).
The page itself is tested in Chromium by tests/test_web_app.py."""

from __future__ import annotations

import zipfile

import pytest

from helpers_inference import build_tiny_text_to_image, save_tiny_model, write_rgba_image
from mira.app import AppRequest, AppRunner
from mira.app.__main__ import build_parser
from mira.inference.errors import InferenceError, InputError
from mira.inference.pipeline import InferenceSettings


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    checkpoint = save_tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny")
    text_model = build_tiny_text_to_image(tmp_path_factory.mktemp("sd") / "tiny-sd")
    settings = InferenceSettings(checkpoint_path=str(checkpoint), inputs=["(app)"], device="cpu", num_frames=3,
                                 render_size=16, text_model=str(text_model), text_steps=1, text_image_size=64,
                                 texture_size=64, density_threshold=1e-3)
    app_runner = AppRunner(settings, tmp_path_factory.mktemp("outputs"))
    app_runner.load()
    return app_runner


def test_an_image_gives_every_file_the_page_shows(runner, tmp_path):
    image = write_rgba_image(tmp_path / "chair.png")
    stages = []
    result = runner.run(AppRequest(image_path=str(image), image_name="chair.png", mesh_resolution=16, texture=True),
                        on_stage=lambda fraction, text: stages.append(fraction))
    assert stages == sorted(stages) and len(stages) >= 4  # progress only moves forward
    for path in (result.input_image, result.glb, result.ply, result.video):
        assert path.is_file() and path.stat().st_size > 0, path
    assert result.folder.name.endswith("_chair") and result.glb.read_bytes()[:4] == b"glTF"
    with zipfile.ZipFile(result.obj) as archive:  # textured OBJ: three files, one download
        assert sorted(archive.namelist()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    assert "textured" in result.summary


def test_a_prompt_runs_through_the_text_to_image_pipeline(runner):
    result = runner.run(AppRequest(prompt="a red chair", mesh_resolution=16, remove_background=False))
    assert (result.folder / "generated.png").is_file() and result.obj.suffix == ".obj"


def test_bad_requests_are_user_errors_naming_the_upload(runner, tmp_path):
    with pytest.raises(InputError, match="Upload an image or type a prompt"):
        runner.run(AppRequest())
    broken = tmp_path / "upload_123.tmp"
    broken.write_text("not an image")
    with pytest.raises(InputError) as error:
        runner.run(AppRequest(image_path=str(broken), image_name="my photo.png"))
    assert "my photo.png" in str(error.value) and str(tmp_path) not in str(error.value)
    with pytest.raises(InferenceError, match="foreground_ratio"):
        runner.run(AppRequest(image_path=str(broken), image_name="x.png", foreground_ratio=1.5))


def test_app_flags():
    args = build_parser().parse_args(["--checkpoint_path", "c", "--host", "0.0.0.0", "--port", "9000", "--share"])
    assert (args.checkpoint_path, args.host, args.port, args.share) == ("c", "0.0.0.0", 9000, True)
