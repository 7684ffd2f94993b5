"""One dynamic partition per category folder of the training set (names may contain spaces: ``salt dome``)."""

import dagster as dg

CATEGORY_PARTITIONS_NAME = "category"

category_partitions = dg.DynamicPartitionsDefinition(name=CATEGORY_PARTITIONS_NAME)
