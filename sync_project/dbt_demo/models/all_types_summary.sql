-- One row: how many rows ALL_TYPES has in the published copy, and when this model read it.
select count(*) as row_count, now() as built_at
from {{ source('demo', 'ALL_TYPES') }}
