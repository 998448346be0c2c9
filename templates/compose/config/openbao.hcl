{%- if configs.vault_hcl is defined and configs.vault_hcl %}{{ configs.vault_hcl }}{% endif -%}
