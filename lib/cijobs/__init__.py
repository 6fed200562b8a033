"""cijobs: query Tencent Cloud 数据万象 (CI) jobs, normalize them to typed JSON, write them out."""

__version__ = "0.1.0"
