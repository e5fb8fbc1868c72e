"""Test double of ComfyUI's ``folder_paths`` over a temporary base folder.

Same function names and behaviour as ComfyUI's module for what the pack uses. Tests
call ``stub_configure(tmp_path)`` to get a fresh ``models/``, ``output/``, ``temp/`` and
``input/`` under their own folder.
"""

from __future__ import annotations

import os
import tempfile

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

MODEL_FOLDERS = {
    "checkpoints": ["checkpoints"],
    "loras": ["loras"],
    "vae": ["vae"],
    "text_encoders": ["text_encoders", "clip"],
    "diffusion_models": ["unet", "diffusion_models"],
    "clip_vision": ["clip_vision"],
    "embeddings": ["embeddings"],
    "upscale_models": ["upscale_models"],
}

base_path = ""
models_dir = ""
output_directory = ""
temp_directory = ""
input_directory = ""
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}


def stub_configure(base: str | os.PathLike) -> None:
    """Point every folder at ``base`` (ComfyUI's layout) and forget added model folders."""
    global base_path, models_dir, output_directory, temp_directory, input_directory
    base_path = os.fspath(base)
    models_dir = os.path.join(base_path, "models")
    output_directory = os.path.join(base_path, "output")
    temp_directory = os.path.join(base_path, "temp")
    input_directory = os.path.join(base_path, "input")
    folder_names_and_paths.clear()
    for name, subfolders in MODEL_FOLDERS.items():
        folder_names_and_paths[name] = (
            [os.path.join(models_dir, s) for s in subfolders],
            supported_pt_extensions,
        )
    folder_names_and_paths["diffusers"] = ([os.path.join(models_dir, "diffusers")], {"folder"})


def get_output_directory() -> str:
    return output_directory


def set_output_directory(output_dir: str) -> None:
    global output_directory
    output_directory = output_dir


def get_temp_directory() -> str:
    return temp_directory


def get_input_directory() -> str:
    return input_directory


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    paths, extensions = folder_names_and_paths.setdefault(folder_name, ([], set()))
    if full_folder_path in paths:
        paths.remove(full_folder_path)
    if is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[folder_name][0][:]


def _files_under(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for filename in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, filename), root).replace(os.sep, "/"))
    return found


def get_filename_list(folder_name: str) -> list[str]:
    """Files under every path of the folder whose extension is listed (all when none are)."""
    paths, extensions = folder_names_and_paths[folder_name]
    names = set()
    for root in paths:
        for relative in _files_under(root):
            if not extensions or os.path.splitext(relative)[-1].lower() in extensions:
                names.add(relative)
    return sorted(names)


def get_full_path(folder_name: str, filename: str) -> str | None:
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for root in folder_names_and_paths[folder_name][0]:
        full_path = os.path.join(root, filename)
        if os.path.isfile(full_path):
            return full_path
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


stub_configure(tempfile.mkdtemp(prefix="comfy_stub_"))
