"""Write scikit-learn's copy of the UCI Breast Cancer Wisconsin (Diagnostic) table — 569 rows, 30 continuous
features, a diagnosis label — as a CSV with a header and a ``label`` column, the tabular set of this benchmark
(the GEBM paper's UCI sets are not installable here; this one ships inside scikit-learn).

    python benchmarks/kale_fixed/make_data.py OUT.csv
"""

import sys

import numpy as np
from sklearn.datasets import load_breast_cancer

d = load_breast_cancer()
header = ",".join([f"f{i}" for i in range(d.data.shape[1])] + ["label"])
np.savetxt(sys.argv[1], np.column_stack([d.data, d.target]), delimiter=",", header=header, comments="", fmt="%.10g")
print(f"{sys.argv[1]}: {d.data.shape[0]} rows, {d.data.shape[1]} features")
