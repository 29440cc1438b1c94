# Cuts POST /conversations/search out of Intercom's full 2.16 description, for the sandbox and
# Prism: python3 openapi/cut-conversations-search.py PATH/api.intercom.io-2.16.yaml (from the
# repository's root; needs PyYAML). The body's filters come from contacts-search-2.16.yaml, where
# they are unrolled to the 2 levels of nesting and 15 filters a group the description allows.
import copy
import sys

import yaml

full = yaml.safe_load(open(sys.argv[1]))
contacts = yaml.safe_load(open('openapi/contacts-search-2.16.yaml'))
schemas = full['components']['schemas']
op = copy.deepcopy(full['paths']['/conversations/search']['post'])
# Only the 200 and 401 answers, as the contacts cut.
op['responses'] = {k: v for k, v in op['responses'].items() if k in ('200', '401')}
op['parameters'] = [p for p in op['parameters'] if p['name'] == 'Intercom-Version']
op['requestBody']['content']['application/json']['schema'] = {'$ref': '#/components/schemas/conversation_search_request'}
need = set()
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == '$ref' and isinstance(x, str) and x.startswith('#/components/schemas/'):
                n = x.split('/')[-1]
                if n not in need and n in schemas:
                    need.add(n); walk(schemas[n])
            else:
                walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
walk(op['responses'])
out_schemas = {}
for n in sorted(need):
    out_schemas[n] = schemas[n]
cs = contacts['components']['schemas']
req = copy.deepcopy(schemas['search_request'])
req['description'] = 'Search using Intercoms Search APIs (the body of POST /conversations/search).'
out_schemas['conversation_search_request'] = req
for n in ('single_filter_search_request', 'multiple_filter_search_request', 'nested_filter_search_request', 'starting_after_paging', 'intercom_version', 'error'):
    out_schemas[n] = cs[n]
doc = {k: contacts[k] for k in ('openapi', 'info', 'servers', 'security')}
doc['paths'] = {'/conversations/search': {'post': op}}
doc['components'] = {'schemas': out_schemas, 'securitySchemes': contacts['components']['securitySchemes']}
head = """# Cut from Intercom's api.intercom.io-2.16.yaml (MIT, see LICENSE.md): POST /conversations/search,
# the schemas its answer refers to, and its body as `search_request` (named
# conversation_search_request here), for the sandbox's check of conversation searches and for Prism.
# multiple_filter_search_request refers to itself: it is unrolled to the 2 levels of nesting the
# description allows (nested_filter_search_request), and its 15 filters a group written as maxItems,
# as in contacts-search-2.16.yaml. Made by cut-conversations-search.py beside it (python3, PyYAML, from the root).
"""
open('openapi/conversations-search-2.16.yaml', 'w').write(head + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True))
print(len(need), 'schemas the answer refers to')
