/* The security filters, in phase order: validate (limits/validate), auth,
 * acl (allow/deny). docs/security.md. */
#ifndef TG_FILTERS_SECURITY_H
#define TG_FILTERS_SECURITY_H

#include "filters/filter.h"

extern const tg_filter_t tg_filter_validate; /* validate.c */
extern const tg_filter_t tg_filter_auth;     /* auth.c */
extern const tg_filter_t tg_filter_acl;      /* acl.c */

#endif
