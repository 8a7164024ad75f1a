/*-------------------------------------------------------------------------
 *
 * capture.h
 *	  Change capture on Odoo's tables (capture.c).
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_CAPTURE_H
#define OMNICHAN_CAPTURE_H

/* registers the commit/abort callbacks of change capture */
extern void OmnichanCaptureInit(void);

#endif							/* OMNICHAN_CAPTURE_H */
