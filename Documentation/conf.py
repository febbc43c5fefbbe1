# SPDX-License-Identifier: GPL-2.0
# Minimal Sphinx configuration: sphinx-build -W -n -q Documentation OUT

project = 'llmq'
root_doc = master_doc = 'index'
exclude_patterns = ['_build']
