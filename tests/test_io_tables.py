"""read_table: user tables in three formats, and one-line errors naming the file."""

import pandas as pd
import pytest
from astropy.table import Table

from skytriage.errors import SkytriageInputError
from skytriage.io.tables import read_table


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".parquet"])
def test_each_format_reads_the_same_table(tmp_path, suffix):
    frame = pd.DataFrame({"x": [1.5, 2.0], "y": [3.0, 4.5], "mag": [18.0, 19.5]})
    path = tmp_path / f"stars{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".ecsv":
        Table.from_pandas(frame).write(path, format="ascii.ecsv")
    else:
        frame.to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path, {"x", "y", "mag"}, "catalogue"), frame)


def test_missing_columns_and_unreadable_files_name_the_file(tmp_path):
    path = tmp_path / "stars.csv"
    pd.DataFrame({"x": [1.0]}).to_csv(path, index=False)
    with pytest.raises(SkytriageInputError, match=r"stars.csv.*catalogue lacks mag, y"):
        read_table(path, {"x", "y", "mag"}, "catalogue")
    broken = tmp_path / "truth.parquet"
    broken.write_text("not parquet")
    with pytest.raises(SkytriageInputError, match=r"truth.parquet.*cannot read the truth table"):
        read_table(broken, {"x"}, "truth table")
