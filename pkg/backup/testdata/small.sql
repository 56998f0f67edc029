--
-- PostgreSQL database dump
--

\restrict i8PC82Oc87157SG4w9mYBX07gTFY6Z7ahT5qBSdq6xDuxc9Zx82Jflgr2QsUblB

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: e; Type: TABLE; Schema: public; Owner: root
--

CREATE TABLE public.e (
    x integer
);


ALTER TABLE public.e OWNER TO root;

--
-- Name: t; Type: TABLE; Schema: public; Owner: root
--

CREATE TABLE public.t (
    id integer NOT NULL,
    s text
);


ALTER TABLE public.t OWNER TO root;

--
-- Data for Name: e; Type: TABLE DATA; Schema: public; Owner: root
--

COPY public.e (x) FROM stdin;
\.


--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: root
--

COPY public.t (id, s) FROM stdin;
1	row 1
2	row 2
3	row 3
4	row 4
5	row 5
6	row 6
7	row 7
8	row 8
9	row 9
10	row 10
11	row 11
12	row 12
13	row 13
14	row 14
15	row 15
16	row 16
17	row 17
18	row 18
19	row 19
20	row 20
21	row 21
22	row 22
23	row 23
24	row 24
25	row 25
26	row 26
27	row 27
28	row 28
29	row 29
30	row 30
\.


--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: root
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--

\unrestrict i8PC82Oc87157SG4w9mYBX07gTFY6Z7ahT5qBSdq6xDuxc9Zx82Jflgr2QsUblB

