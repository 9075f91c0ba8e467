"""Importers: bring radiographs and their annotations into a boneaug manifest.

Each importer reads one layout, checks it (image headers included), writes lesion masks
where the annotations have polygons, and writes ``manifest.csv`` atomically; bad input
raises a one-line `BoneaugError` naming the file and row, and nothing is written.
See docs/importing.md.
"""

from boneaug.data.importers.btxrd import import_btxrd
from boneaug.data.importers.coco import import_coco
from boneaug.data.importers.common import ImportReport
from boneaug.data.importers.csv_table import import_csv
from boneaug.data.importers.folder import import_folder
from boneaug.data.importers.labelme import import_labelme

__all__ = ["ImportReport", "import_btxrd", "import_coco", "import_csv", "import_folder",
           "import_labelme"]
