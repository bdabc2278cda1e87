"""edgetailor: one import root (``edgetailor``) mapped onto the design card's top-level folders.

``sdk/`` is ``edgetailor`` with its rooms (arch/, latency/, ...) found as subpackages; the
other top-level folders are mapped beside it. Install editable with
``pip install -e . --config-settings editable_mode=strict`` (the Makefile does) so that IDEs and
static tools follow imports through this mapping.
"""
from setuptools import find_packages, setup

TOP_LEVEL = {"converters": "converters", "device_profiles": "device_profiles",
             "android_harness": "android_harness", "ios_harness": "ios_harness"}

setup(
    name="edgetailor",
    version="0.1.0",
    description="Tailor a mobile vision model to one phone and one latency budget.",
    python_requires=">=3.10,<3.12",
    package_dir={"edgetailor": "sdk", **{f"edgetailor.{name}": folder for name, folder in TOP_LEVEL.items()}},
    packages=["edgetailor", *(f"edgetailor.{room}" for room in find_packages("sdk")),
              *(f"edgetailor.{name}" for name in TOP_LEVEL)],
    package_data={"edgetailor.device_profiles": ["*.json", "ops/*.json"], "edgetailor.bundle.client_runtimes": ["*.txt"]},
    install_requires=[
        "tensorflow-cpu==2.15.1",
        "tflite-support==0.4.4",
        "coremltools==9.0",
        "protobuf==3.20.3",
        "numpy==1.26.4",
        "click==8.5.1",
        "scipy==1.11.4",
        "PyYAML==6.0.4",
        "optuna==5.0.0",
        "psycopg2-binary==2.9.13",
        "matplotlib==3.11.2",
        "pycocotools==2.0.11",
        # quantization-aware training: 0.7.5 imports and trains with TF 2.15's Keras 2 as is (0.8
        # sets TF_USE_LEGACY_KERAS=1 process-wide for Keras 3 setups); it needs dm-tree and
        # absl-py < 2 (TF 2.15 takes either)
        "tensorflow-model-optimization==0.7.5",
        "dm-tree==0.1.10",
        "absl-py==1.4.0",
        # the kernel-level host predictor's fitting only (random forest, gradient boosting); the
        # fitted trees are stored as arrays and predicted by numpy. 1.5.2 keeps numpy 1.26.4 and
        # scipy 1.11.4 (checked with pip install scikit-learn==1.5.2 into the venv)
        "scikit-learn==1.5.2",
        "joblib==1.6.0",
        "threadpoolctl==3.8.0",
        "cloudpickle==3.1.3",
    ],
    extras_require={"test": ["pytest==9.2.0", "hypothesis==6.170.17", "pytest-xdist==3.8.0", "execnet==2.1.2"]},
    entry_points={"console_scripts": ["edgetailor = edgetailor.cli.main:main"]},
)
