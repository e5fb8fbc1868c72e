"""Test double of ComfyUI's ``folder_paths`` over a temporary base folder.

ComfyUI's folder layout (``models/``, ``input/``, ``output/``, ``temp/``, ``user/`` under one base)
and its function names for the models folders the pack reads or writes. Tests call
``stub_configure(tmp_path)`` to get fresh folders under their own directory.
"""

from __future__ import annotations

import os
import tempfile

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

_MODEL_FOLDERS = {
    "loras": (["loras"], supported_pt_extensions),
    "diffusion_models": (["unet", "diffusion_models"], supported_pt_extensions),
    "text_encoders": (["text_encoders", "clip"], supported_pt_extensions),
    "diffusers": (["diffusers"], ["folder"]),
    "checkpoints": (["checkpoints"], supported_pt_extensions),
    "vae": (["vae"], supported_pt_extensions),
}
"""ComfyUI's models folders the pack uses: sub-folders of ``models/`` and file extensions."""

base_path = ""
models_dir = ""
output_directory = ""
input_directory = ""
temp_directory = ""
user_directory = ""
folder_names_and_paths: dict[str, tuple[list[str], set[str] | list[str]]] = {}


def stub_configure(base: str | os.PathLike) -> None:
    """Put every folder under ``base``, as ComfyUI's ``--base-directory`` does."""
    global base_path, models_dir, output_directory, input_directory, temp_directory, user_directory
    base_path = os.fspath(base)
    models_dir = os.path.join(base_path, "models")
    output_directory = os.path.join(base_path, "output")
    input_directory = os.path.join(base_path, "input")
    temp_directory = os.path.join(base_path, "temp")
    user_directory = os.path.join(base_path, "user")
    folder_names_and_paths.clear()
    for name, (subfolders, extensions) in _MODEL_FOLDERS.items():
        folder_names_and_paths[name] = ([os.path.join(models_dir, s) for s in subfolders], extensions)


def get_output_directory() -> str:
    return output_directory


def get_input_directory() -> str:
    return input_directory


def get_temp_directory() -> str:
    """Where previews go (ComfyUI empties it at start)."""
    return temp_directory


def get_user_directory() -> str:
    """Where a pack keeps its persistent state (ComfyUI's ``--user-directory``)."""
    return user_directory


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths[folder_name][0])


def get_filename_list(folder_name: str) -> list[str]:
    """Relative paths of the files under each path of the folder whose extension is
    listed (every file when none are), sorted; ``.git`` folders are skipped."""
    paths, extensions = folder_names_and_paths[folder_name]
    names = set()
    for root in paths:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for filename in filenames:
                relative = os.path.relpath(os.path.join(dirpath, filename), root)
                if not extensions or os.path.splitext(relative)[-1].lower() in extensions:
                    names.add(relative)
    return sorted(names)


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The first existing file of that name under the folder's paths; a name cannot
    climb out of them (``../x`` is read as ``x``)."""
    if folder_name not in folder_names_and_paths:
        return None
    inside = os.path.relpath(os.path.join(os.sep, filename), os.sep)
    for root in folder_names_and_paths[folder_name][0]:
        if os.path.isfile(os.path.join(root, inside)):
            return os.path.join(root, inside)
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


stub_configure(tempfile.mkdtemp(prefix="comfy_stub_"))

__all__ = [
    "supported_pt_extensions",
    "base_path",
    "models_dir",
    "output_directory",
    "input_directory",
    "temp_directory",
    "user_directory",
    "folder_names_and_paths",
    "get_output_directory",
    "get_input_directory",
    "get_temp_directory",
    "get_user_directory",
    "get_folder_paths",
    "get_filename_list",
    "get_full_path",
    "get_full_path_or_raise",
]
