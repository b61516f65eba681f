"Class-conditional butterfly generation with a DDPM steered by classifier guidance."
__version__ = "0.1.0"

# The seed's API, importable as `import butterfly_diffusion as bd; bd.UNet` etc.
from .core import Config, get_config, get_device, seed_everything, show_images
from .unet import UNet, UNet_classifier, UNetClassifier
