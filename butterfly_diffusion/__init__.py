"Class-conditional butterfly generation with a DDPM steered by classifier guidance."
__version__ = "0.1.0"

# The seed's API, importable as `import butterfly_diffusion as bd; bd.UNet` or `from butterfly_diffusion import UNet`.
# Each name loads its module (and PyTorch) when first used, so the command line starts at once and can answer Ctrl-C.
_API = {'core': ['Config', 'NetConfig', 'get_config', 'get_device', 'seed_everything', 'show_images'],
        'data': ['get_data', 'SyntheticButterflies'],
        'unet': ['UNet', 'UNet_classifier', 'UNetClassifier'],
        'scheduler': ['NoiseSchedule'],
        'checkpoint': ['load_models', 'find_checkpoint', 'shipped_weights'],
        'training': ['train_classifier_guidance', 'train_models'],
        'guidance': ['sample', 'generate_and_save_images', 'load_pipeline', 'Pipeline'],
        'cascade': ['train_upsampler', 'load_upsampler', 'Upsampler']}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = [*_WHERE]

def __getattr__(name):
    "A name of the API, or a module of the package (`bd.core`), loaded on first use."
    import importlib
    if name in _API: return importlib.import_module(f'{__name__}.{name}')
    if name in _WHERE: return getattr(importlib.import_module(f'{__name__}.{_WHERE[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

def __dir__(): return sorted([*globals(), *_WHERE])
