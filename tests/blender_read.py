"""Run inside Blender (`blender -b --factory-startup --python tests/blender_read.py -- IN.glb OUT.json`): imports a
glTF with Blender's own importer and writes what it made of it, read back from Blender's data: the shape keys, the
keyframes of each shape key's animation curve and of the node rotations, the scene's frame rate."""
import json
import sys

import bpy

source, result = sys.argv[sys.argv.index("--") + 1:][:2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = 30
# Shading "SMOOTH": Debian's Blender 3.4 guesses flat faces ("NORMALS", the default) with np.bool, gone from numpy
bpy.ops.import_scene.gltf(filepath=source, import_shading="SMOOTH")

out = {"fps": bpy.context.scene.render.fps, "objects": {}, "shape_keys": {}, "node_curves": {}}
for obj in bpy.data.objects:
    out["objects"][obj.name] = obj.type
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is not None:
        out["shape_keys"][obj.name] = [block.name for block in keys.key_blocks]
        if keys.animation_data and keys.animation_data.action:
            out["shape_key_curves"] = {
                fc.data_path: [list(p.co) for p in fc.keyframe_points] for fc in keys.animation_data.action.fcurves}
    if obj.animation_data and obj.animation_data.action:
        out["node_curves"][obj.name] = {
            f"{fc.data_path}[{fc.array_index}]": [list(p.co) for p in fc.keyframe_points]
            for fc in obj.animation_data.action.fcurves}
with open(result, "w") as f:
    json.dump(out, f)
