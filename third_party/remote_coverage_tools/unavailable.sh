#!/bin/sh
echo "remote_coverage_tools is an offline stand-in; coverage merging is unavailable." >&2
exit 1
