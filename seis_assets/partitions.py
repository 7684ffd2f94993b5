"""One dynamic partition per category folder of the training set (names may contain spaces: ``salt dome``)."""

import dagster as dg

CATEGORY_PARTITIONS_NAME = "category"

category_partitions = dg.DynamicPartitionsDefinition(name=CATEGORY_PARTITIONS_NAME)

SURVEY_PARTITIONS_NAME = "survey"

#: One dynamic partition per SEG-Y survey file (its file name), added by the demo or by hand in the UI.
survey_partitions = dg.DynamicPartitionsDefinition(name=SURVEY_PARTITIONS_NAME)
