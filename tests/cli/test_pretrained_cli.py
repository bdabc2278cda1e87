"""`--pretrained` mistakes: each one line (or click's usage error), nothing written, before any
model is built."""
from cli_checks import assert_one_line_error, invoke


def test_pretrained_needs_a_dataset_and_a_picked_family(tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(invoke("specialize", "--device", "pixel1", "--budget-ms", 20, "--pretrained", "imagenet",
                                 "--out", out), "--pretrained needs --dataset")
    (tmp_path / "data" / "a").mkdir(parents=True)
    result = invoke("specialize", "--device", "pixel1", "--budget-ms", 20, "--pretrained", "imagenet",
                    "--dataset", tmp_path / "data", "--search", "mnasnet", "--out", out)
    assert_one_line_error(result, "--search does not take it")
    assert not out.exists()


def test_pretrained_takes_imagenet_or_an_existing_file(tmp_path):
    result = invoke("build", "mobilenet_v2", "--pretrained", tmp_path / "nope.h5", "--out", tmp_path / "m.keras")
    assert result.exit_code == 2 and "neither 'imagenet' nor an existing Keras .h5" in result.output
    inline = "res64 | conv_k3_s2_c16_re | ir_k3_e3_c16_re | head:pool"
    result = invoke("build", inline, "--pretrained", "imagenet", "--out", tmp_path / "m.keras")
    assert_one_line_error(result, "--pretrained needs a family or zoo name")
    assert list(tmp_path.iterdir()) == []


def test_pretrained_refuses_a_family_without_published_weights(tmp_path):
    result = invoke("build", "ghostnet", "--pretrained", "imagenet", "--resolution", 64, "--out", tmp_path / "m.keras")
    assert_one_line_error(result, "no pretrained start for ghostnet")
    assert list(tmp_path.iterdir()) == []


def test_fine_tuning_data_whose_classes_differ_from_the_labels_is_one_line(tmp_path):
    assert invoke("shapes", "--format", "classes", "--images", 12, "--size", 32,
                  "--out", tmp_path / "photos").exit_code == 0
    labels = tmp_path / "labels.txt"
    labels.write_text("circle\ncross\nring\nsquare\nstar\nhexagon\n")
    out = tmp_path / "out"
    result = invoke("specialize", "--device", "pixel1", "--budget-ms", 20, "--dataset", tmp_path / "photos",
                    "--labels", labels, "--pretrained", "imagenet", "--out", out)
    assert_one_line_error(result, "--labels does not match the dataset's classes")
    assert not out.exists()


def test_package_builds_a_pretrained_family_point_and_refuses_it_for_a_saved_model(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    saved = tmp_path / "m.keras"
    saved.write_bytes(b"not read")
    result = invoke("package", saved, "--device", "pixel1", "--labels", labels, "--pretrained", "imagenet",
                    "--out", tmp_path / "bundle")
    assert_one_line_error(result, "a saved model has its own")
    assert not (tmp_path / "bundle").exists()
