"""Pretrained starts: Keras Applications weights files (made here, never downloaded) mapped onto
our models at any width and resolution, and every way a weights file can be wrong."""
import h5py
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.arch import zoo
from edgetailor.builder import pretrained as starts
from edgetailor.builder.keras_layers import ChannelAffine
from edgetailor.errors import WeightsError

pytestmark = pytest.mark.slow  # builds Keras Applications models (seconds each)


def _randomise_batch_norm(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics, so that a wrong channel choice changes the outputs."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape),
                               rng.normal(0, 0.1, shape), rng.uniform(0.5, 1.5, shape)])


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Keras Applications .h5 files as `model.save_weights` writes them (the download's format)."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("keras_weights")
    made = {}
    for key, constructor, kwargs in (("v2_050", "MobileNetV2", {"alpha": 0.5}),
                                     ("v3_small_075", "MobileNetV3Small", {"alpha": 0.75})):
        model = getattr(tf.keras.applications, constructor)(input_shape=(224, 224, 3), weights=None,
                                                             classifier_activation=None, **kwargs)
        _randomise_batch_norm(model, rng)
        made[key] = folder / f"{key}.h5"
        model.save_weights(made[key])
    return made


def test_same_width_is_the_keras_model_on_our_input(weight_files):
    path = weight_files["v3_small_075"]
    assert starts.identify(path).label == "Keras MobileNetV3Small(alpha=0.75)"
    spec = zoo.FAMILIES["mobilenet_v3_small"].spec(0.75, 1.0, 64)
    ours, start = starts.build_pretrained(spec, "mobilenet_v3_small", path, classifier_activation=None)
    keras_model = tf.keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), alpha=0.75, weights=None,
                                                         classifier_activation=None)
    keras_model.load_weights(path)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    expected = keras_model(127.5 * x + 127.5).numpy()  # Keras' MobileNetV3 takes 0-255 pixels
    assert np.abs(expected).max() > 0.05
    assert np.abs(ours(x).numpy() - expected).max() < 1e-4  # ours takes [-1, 1], like every bundle
    assert start.kept_fraction == 1.0


def test_narrower_width_keeps_the_most_important_channels(weight_files):
    path = weight_files["v2_050"]
    spec = zoo.FAMILIES["mobilenet_v2"].spec(0.35, 1.0, 48)
    ours, start = starts.build_pretrained(spec, "mobilenet_v2", path, num_classes=3)
    assert 0.3 < start.kept_fraction < 0.9
    keras_model = tf.keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=0.5, weights=None)
    keras_model.load_weights(path)
    source = keras_model.get_layer("Conv1").get_weights()[0]           # [3, 3, 3, 16]
    target = ours.get_layer("stem_0_conv").get_weights()[0]             # [3, 3, 3, 16 at 0.35? fewer]
    l1 = np.abs(source).reshape(-1, source.shape[-1]).sum(axis=0)
    kept = np.sort(np.argsort(-l1, kind="stable")[:target.shape[-1]])
    np.testing.assert_array_equal(target, source[..., kept])
    bn = ours.get_layer("stem_0_conv_bn").get_weights()[2]              # moving mean follows the channels
    np.testing.assert_array_equal(bn, keras_model.get_layer("bn_Conv1").get_weights()[2][kept])
    assert ours(np.zeros((1, 48, 48, 3), np.float32)).shape == (1, 3)
    assert ours.layers[1].name == "stem_0_conv"  # MobileNetV2 takes [-1, 1] itself: no input adapter


def test_efficientnet_input_adapter_is_keras_preprocessing_on_our_input():
    mean, variance = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]) ** 2
    normalization = tf.keras.layers.Normalization(mean=mean, variance=variance)
    normalization.build((None, 8, 8, 3))
    layers = [tf.keras.layers.Rescaling(1 / 255), normalization]
    (adapter,) = starts._input_adapter(layers, efficientnet_fix=True)
    assert isinstance(adapter, ChannelAffine)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    expected = normalization(layers[0](127.5 * x + 127.5)).numpy() / np.sqrt([0.229, 0.224, 0.225])
    assert np.abs(adapter(x).numpy() - expected).max() < 1e-5
    assert starts._input_adapter([tf.keras.layers.Rescaling(1 / 127.5, offset=-1)], False) == []


def test_a_file_of_another_family_or_a_narrower_width_is_named(weight_files):
    v3_spec = zoo.FAMILIES["mobilenet_v3_small"].spec(0.5, 1.0, 48)
    with pytest.raises(WeightsError, match=r"holds Keras MobileNetV2\(alpha=0.5\).*expected mobilenet_v3_small"):
        starts.build_pretrained(v3_spec, "mobilenet_v3_small", weight_files["v2_050"])
    wide = zoo.FAMILIES["mobilenet_v2"].spec(0.75, 1.0, 48)
    with pytest.raises(WeightsError, match=r"expected mobilenet_v2 width >= 0.75"):
        starts.build_pretrained(wide, "mobilenet_v2", weight_files["v2_050"])


def test_unreadable_files_are_one_line(tmp_path):
    spec = zoo.FAMILIES["mobilenet_v2"].spec(0.5, 1.0, 48)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    for path, pattern in ((corrupt, "cannot read weights file"), (tmp_path / "missing.h5", "not found")):
        with pytest.raises(WeightsError, match=pattern) as error:
            starts.build_pretrained(spec, "mobilenet_v2", path)
        assert "\n" not in str(error.value)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:  # a Keras weights file, but of no published model
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense").attrs["weight_names"] = [b"kernel:0"]
        f["dense"].create_dataset("kernel:0", data=np.zeros((4, 2)))
    with pytest.raises(WeightsError, match="holds no Keras Applications model"):
        starts.build_pretrained(spec, "mobilenet_v2", other)


def test_imagenet_offline_says_how_to_pass_a_file(monkeypatch):
    """Keras' download raises a bare Exception offline; the network itself is never used here."""
    from keras.src.utils import data_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(data_utils, "get_file", offline)
    spec = zoo.FAMILIES["mobilenet_v2"].spec(0.35, 1.0, 48)
    with pytest.raises(WeightsError, match=r"cannot download ImageNet weights .*offline.*--pretrained FILE"):
        starts.build_pretrained(spec, "mobilenet_v2", "imagenet")


def test_families_without_published_weights_are_refused():
    with pytest.raises(WeightsError, match="no pretrained start for ghostnet"):
        starts.build_pretrained(zoo.FAMILIES["ghostnet"].spec(1.0, 1.0, 64), "ghostnet", "imagenet")
    with pytest.raises(WeightsError, match="no pretrained start for mobilenet_v3_large width 1.25"):
        starts.build_pretrained(zoo.FAMILIES["mobilenet_v3_large"].spec(1.25, 1.0, 64), "mobilenet_v3_large",
                                "imagenet")


def test_split_or_shuffled_channels_cannot_be_mapped():
    from edgetailor.builder import network

    model = network.build(zoo.FAMILIES["shufflenet_v2"].spec(0.5, 1.0, 32), num_classes=2)
    with pytest.raises(WeightsError, match="cannot be mapped"):
        starts.channel_groups(model)
