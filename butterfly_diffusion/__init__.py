"Class-conditional butterfly generation with a DDPM steered by classifier guidance."
__version__ = "0.1.0"

# The seed's API, importable as `import butterfly_diffusion as bd; bd.UNet` etc.
from .core import Config, NetConfig, get_config, get_device, seed_everything, show_images
from .data import get_data, SyntheticButterflies
from .unet import UNet, UNet_classifier, UNetClassifier
from .scheduler import NoiseSchedule
from .checkpoint import load_models, find_checkpoint, shipped_weights
from .training import train_classifier_guidance
from .guidance import sample, generate_and_save_images, load_pipeline, Pipeline
